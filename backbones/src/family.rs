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

    /// Super-resolution models whose output at a pixel depends only on the input within this
    /// radius (input pixels): tiles with that much context reproduce the untiled output
    /// exactly. `None` (the default) for models that pool over the whole image (channel
    /// attention, global statistics): their tiles are blended instead.
    fn receptive_radius(&self) -> Option<usize> {
        None
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

    /// For an encoder-decoder: where the keys of a classification checkpoint of its encoder
    /// (`keys`, as the checkpoint names them) go in this model, as `(checkpoint key, official
    /// key of this model)` pairs (a key may fill several tensors, e.g. Swin-UNet's mirrored
    /// decoder). Keys without a pair (the classifier head) are left out. `None` for models
    /// without an encoder of that kind.
    fn encoder_checkpoint_keys(&self, keys: &[String]) -> Option<Vec<(String, String)>> {
        let _ = keys;
        None
    }

    /// Puts an attention block of this kind in every decoder block (segmentation decoders).
    fn set_decoder_attention(
        &mut self,
        kind: gaze_blocks::attention::AttentionKind,
    ) -> Result<(), String> {
        let _ = kind;
        Err("has no decoder to put attention in".into())
    }

    /// Tables the forward reads through an index that depends on the input size, for an
    /// `[h, w]` input: `(official key, index)` ([`gaze_weights::OnnxHints::gathered`]), so that
    /// an ONNX export whose exporter folded the lookup into one constant still loads.
    fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
        let _ = input;
        Vec::new()
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

/// `Family` and `FamilyNet` for a classifier family whose configuration has `in_chans` and
/// `num_classes` fields and inherent `init`/`feature_info`, and whose network has inherent
/// `forward` (logits), `forward_features`, `forward_head` and `forward_intermediates`:
///
/// ```ignore
/// classifier_family!(ResNetConfig => ResNet, features: Map, key_map: |c| c.official_key_map());
/// classifier_family!(LevitConfig => Levit, features: Map, key_map: |_| key_map(),
///     input_size: |c| InputSize::Fixed(c.img_size));
/// ```
///
/// `features: Map` hands the head the last stage's NCHW map, `features: Tokens` the token
/// sequence of `forward_tokens` (ViT). Each family file keeps its own `VARIANTS` table.
#[macro_export]
macro_rules! classifier_family {
    ($config:ty => $net:ty, features: $kind:ident, key_map: $key_map:expr $(, input_size: $input_size:expr)? $(, gathered_tables: $gathered:expr)? $(,)?) => {
        impl $crate::family::Family for $config {
            type Net = $net;

            fn variants() -> &'static [$crate::registry::ModelInfo] {
                VARIANTS
            }

            fn init(&self, device: &burn::prelude::Device) -> $net {
                <$config>::init(self, device)
            }

            fn key_map(&self) -> gaze_weights::KeyMap {
                let rule: fn(&$config) -> gaze_weights::KeyMap = $key_map;
                rule(self)
            }

            $(
                fn input_size(&self) -> $crate::model::InputSize {
                    let rule: fn(&$config) -> $crate::model::InputSize = $input_size;
                    rule(self)
                }
            )?

            $(
                fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
                    let rule: fn(&$config, [usize; 2]) -> Vec<(String, Vec<i64>)> = $gathered;
                    rule(self, input)
                }
            )?

            fn feature_info(&self) -> Vec<$crate::features::FeatureInfo> {
                <$config>::feature_info(self)
            }

            fn in_chans(&self) -> usize {
                self.in_chans
            }

            fn set_in_chans(&mut self, in_chans: usize) {
                self.in_chans = in_chans;
            }

            fn num_classes(&self) -> Option<usize> {
                Some(self.num_classes)
            }

            fn set_num_classes(&mut self, num_classes: usize) -> Result<(), String> {
                self.num_classes = num_classes;
                Ok(())
            }
        }

        impl $crate::family::FamilyNet for $net {
            fn forward(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Output {
                $crate::model::Output::Logits(<$net>::forward(self, x))
            }

            fn forward_features(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Features {
                $crate::classifier_family!(@features $kind, self, $net, x)
            }

            fn forward_head(
                &self,
                features: $crate::model::Features,
            ) -> Result<$crate::model::Output, String> {
                match features {
                    $crate::model::Features::$kind(f) => {
                        Ok($crate::model::Output::Logits(<$net>::forward_head(self, f)))
                    }
                    _ => Err(concat!(
                        "expects the ",
                        stringify!($kind),
                        " features of forward_features"
                    )
                    .into()),
                }
            }

            fn forward_intermediates(
                &self,
                x: burn::prelude::Tensor<4>,
            ) -> Vec<burn::prelude::Tensor<4>> {
                <$net>::forward_intermediates(self, x)
            }
        }
    };
    (@features Map, $self:ident, $net:ty, $x:ident) => {
        $crate::model::Features::Map(<$net>::forward_features($self, $x))
    };
    (@features Tokens, $self:ident, $net:ty, $x:ident) => {
        $crate::model::Features::Tokens(<$net>::forward_tokens($self, $x))
    };
}

/// A segmentation model's class count: at least one output channel.
pub fn segmentation_classes(num_classes: usize) -> Result<usize, String> {
    if num_classes == 0 {
        return Err("a segmentation model needs at least one output channel".into());
    }
    Ok(num_classes)
}

/// `Family` (and [`segmenter_net!`]) for a segmentation family whose configuration has
/// `in_chans` and `num_classes` fields and inherent `init`, `key_map` and `feature_info`;
/// further trait methods may follow the network's type:
///
/// ```ignore
/// segmentation_family!(UNetConfig => UNet);
/// segmentation_family!(SwinUNetConfig => SwinUNet, fn encoder_checkpoint_keys(..) { .. });
/// ```
#[macro_export]
macro_rules! segmentation_family {
    ($config:ty => $net:ty $(, $($extra:tt)*)?) => {
        impl $crate::family::Family for $config {
            type Net = $net;

            fn variants() -> &'static [$crate::registry::ModelInfo] {
                VARIANTS
            }

            fn init(&self, device: &burn::prelude::Device) -> $net {
                <$config>::init(self, device)
            }

            fn key_map(&self) -> gaze_weights::KeyMap {
                <$config>::key_map(self)
            }

            fn feature_info(&self) -> Vec<$crate::features::FeatureInfo> {
                <$config>::feature_info(self)
            }

            fn in_chans(&self) -> usize {
                self.in_chans
            }

            fn set_in_chans(&mut self, in_chans: usize) {
                self.in_chans = in_chans;
            }

            fn num_classes(&self) -> Option<usize> {
                Some(self.num_classes)
            }

            fn set_num_classes(&mut self, num_classes: usize) -> Result<(), String> {
                self.num_classes = $crate::family::segmentation_classes(num_classes)?;
                Ok(())
            }

            $($($extra)*)?
        }

        $crate::segmenter_net!($net);
    };
}

/// `FamilyNet` for a segmentation network with inherent `forward` (mask logits),
/// `forward_features` (the decoder map), `forward_head` and `forward_intermediates`.
#[macro_export]
macro_rules! segmenter_net {
    ($net:ty) => {
        impl $crate::family::FamilyNet for $net {
            fn forward(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Output {
                $crate::model::Output::Mask(<$net>::forward(self, x))
            }

            fn forward_features(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Features {
                $crate::model::Features::Map(<$net>::forward_features(self, x))
            }

            fn forward_head(
                &self,
                features: $crate::model::Features,
            ) -> Result<$crate::model::Output, String> {
                match features {
                    $crate::model::Features::Map(f) => {
                        Ok($crate::model::Output::Mask(<$net>::forward_head(self, f)))
                    }
                    _ => Err("expects the decoder map of forward_features".into()),
                }
            }

            fn forward_intermediates(
                &self,
                x: burn::prelude::Tensor<4>,
            ) -> Vec<burn::prelude::Tensor<4>> {
                <$net>::forward_intermediates(self, x)
            }
        }
    };
}

/// The [`FamilyNet`] of a super-resolution network from its inherent methods: `forward(x)`
/// (the image), `forward_features(x)` (low-resolution features) and `forward_head(features)`,
/// or `forward_head(features, lr)` with `with_input` (heads with a skip from the input, or that
/// crop back to it), so every SR family answers the same API.
///
/// ```ignore
/// crate::sr_net!(Imdn);
/// crate::sr_net!(Pan, with_input);
/// ```
#[macro_export]
macro_rules! sr_net {
    ($net:ty) => {
        $crate::sr_net!(@impl $net, plain);
    };
    ($net:ty, with_input) => {
        $crate::sr_net!(@impl $net, with_input);
    };
    (@head plain, $s:expr, $net:ty, $features:ident, $input:ident) => {{
        let _ = $input;
        <$net>::forward_head($s, $features)
    }};
    (@head with_input, $s:expr, $net:ty, $features:ident, $input:ident) => {
        <$net>::forward_head($s, $features, $input)
    };
    (@impl $net:ty, $head:ident) => {
        impl $crate::family::FamilyNet for $net {
            fn forward(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Output {
                $crate::model::Output::Image(<$net>::forward(self, x))
            }

            fn forward_features(&self, x: burn::prelude::Tensor<4>) -> $crate::model::Features {
                $crate::model::Features::Sr {
                    features: <$net>::forward_features(self, x.clone()),
                    input: x,
                }
            }

            fn forward_head(
                &self,
                features: $crate::model::Features,
            ) -> Result<$crate::model::Output, String> {
                match features {
                    $crate::model::Features::Sr { features, input } => {
                        Ok($crate::model::Output::Image($crate::sr_net!(
                            @head $head, self, $net, features, input
                        )))
                    }
                    _ => Err("expects the features and input of forward_features".into()),
                }
            }
        }
    };
}
