//! What a model family provides: the [`Family`] trait on its configuration and the
//! [`FamilyNet`] trait on its network. `model.rs` lists the families once; everything else
//! (the [`crate::ModelConfig`] and [`crate::Net`] enums, dispatch, the registry) is generated.

use burn::prelude::*;
use gaze_weights::KeyMap;

use crate::features::FeatureInfo;
use crate::model::{Features, InputSize, Output};
use crate::registry::ModelInfo;

/// A family's configuration: how to build the network, how its official checkpoints name
/// their tensors, which inputs it takes, and its registered variants.
pub trait Family: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The network this configuration builds.
    type Net: FamilyNet;

    /// The registered variants of the family, as data (name, task, paper, parameters,
    /// preprocessing, published weights, configuration).
    fn variants() -> &'static [ModelInfo];

    /// Builds the network with random weights.
    fn init(&self, device: &Device) -> Self::Net;

    /// The key map from the official checkpoint's names to the module's paths (and back).
    fn key_map(&self) -> KeyMap;

    /// The input sizes the architecture accepts.
    fn input_size(&self) -> InputSize {
        InputSize::Any
    }

    /// The multi-scale feature maps' channels and strides (empty without a pyramid).
    fn feature_info(&self) -> Vec<FeatureInfo> {
        Vec::new()
    }

    /// Image channels in.
    fn in_chans(&self) -> usize;

    /// Sets the image channels in.
    fn set_in_chans(&mut self, in_chans: usize);

    /// Classifier outputs, for classifiers and segmenters (`Some(0)`: no head).
    fn num_classes(&self) -> Option<usize> {
        None
    }

    /// Replaces the classifier by a fresh one with `num_classes` outputs (0: no head).
    fn set_num_classes(&mut self, num_classes: usize) -> Result<(), String> {
        let _ = num_classes;
        Err("has no classifier head".into())
    }
}

/// The forward API every family's network implements (timm's names).
pub trait FamilyNet: burn::module::Module {
    /// The model's output (logits, image or mask).
    fn forward(&self, x: Tensor<4>) -> Output;

    /// What the head consumes.
    fn forward_features(&self, x: Tensor<4>) -> Features;

    /// The head on [`FamilyNet::forward_features`]' output (an error for features of
    /// another kind).
    fn forward_head(&self, features: Features) -> Result<Output, String>;

    /// Multi-scale feature maps, finest first (empty without a pyramid).
    fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let _ = x;
        Vec::new()
    }
}
