//! [`Model`]: one type for every registered network, with the same API for each family
//! (`forward`, `forward_features`, `forward_head`, `forward_intermediates`, `feature_info`),
//! created by name with timm's `create_model` options, loaded from and saved to official
//! checkpoints. A Burn [`Module`]: train it, move it, map it like any other.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use gaze_blocks::cpu_kernels::on_worker;
use gaze_weights::{Checkpoint, KeyMap, LoadError, LoadReport, SaveError};

use crate::family::{Family, FamilyNet};
use crate::features::FeatureInfo;
use crate::registry::{ModelInfo, Task};

/// Declares the families, once: generates the [`ModelConfig`] and [`Net`] enums and their
/// dispatch. Adding a family is one line here plus its file.
macro_rules! families {
    ($($variant:ident($config:ty, $net:ty)),* $(,)?) => {
        /// A family's configuration: what a registry entry builds.
        #[derive(Debug, Clone)]
        pub enum ModelConfig {
            $(
                #[allow(missing_docs)]
                $variant($config),
            )*
        }

        $(impl From<$config> for ModelConfig {
            fn from(c: $config) -> Self {
                ModelConfig::$variant(c)
            }
        })*

        /// The network inside a [`Model`], one variant per family.
        #[derive(Module, Debug)]
        pub enum Net {
            $(
                #[allow(missing_docs)]
                $variant($net),
            )*
        }

        impl ModelConfig {
            /// Builds the network with random weights.
            pub fn init(&self, device: &Device) -> Net {
                match self { $(ModelConfig::$variant(c) => Net::$variant(Family::init(c, device)),)* }
            }
            /// The key map from the official checkpoint's names to the module's paths.
            pub fn key_map(&self) -> KeyMap {
                match self { $(ModelConfig::$variant(c) => Family::key_map(c),)* }
            }
            /// The input sizes the architecture accepts.
            pub fn input_size(&self) -> InputSize {
                match self { $(ModelConfig::$variant(c) => Family::input_size(c),)* }
            }
            /// The finite receptive-field radius of an SR model ([`Family::receptive_radius`]).
            pub fn receptive_radius(&self) -> Option<usize> {
                match self { $(ModelConfig::$variant(c) => Family::receptive_radius(c),)* }
            }
            /// The multi-scale feature maps' channels and strides.
            pub fn feature_info(&self) -> Vec<FeatureInfo> {
                match self { $(ModelConfig::$variant(c) => Family::feature_info(c),)* }
            }
            /// Image channels in.
            pub fn in_chans(&self) -> usize {
                match self { $(ModelConfig::$variant(c) => Family::in_chans(c),)* }
            }
            /// Sets the image channels in.
            pub fn set_in_chans(&mut self, in_chans: usize) {
                match self { $(ModelConfig::$variant(c) => Family::set_in_chans(c, in_chans),)* }
            }
            /// Classifier outputs (None for models without a classifier).
            pub fn num_classes(&self) -> Option<usize> {
                match self { $(ModelConfig::$variant(c) => Family::num_classes(c),)* }
            }
            /// Replaces the classifier by a fresh one (0: none).
            pub fn set_num_classes(&mut self, n: usize) -> Result<(), String> {
                match self { $(ModelConfig::$variant(c) => Family::set_num_classes(c, n),)* }
            }
            /// Where an encoder-decoder's checkpoint keeps its encoder, if it has one.
            pub fn encoder_checkpoint_keys(&self, keys: &[String]) -> Option<Vec<(String, String)>> {
                match self { $(ModelConfig::$variant(c) => Family::encoder_checkpoint_keys(c, keys),)* }
            }
            /// Index tables of size-dependent lookups ([`Family::gathered_tables`]).
            pub fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
                match self { $(ModelConfig::$variant(c) => Family::gathered_tables(c, input),)* }
            }
            /// Puts attention of this kind in every decoder block.
            pub fn set_decoder_attention(
                &mut self,
                kind: gaze_blocks::attention::AttentionKind,
            ) -> Result<(), String> {
                match self { $(ModelConfig::$variant(c) => Family::set_decoder_attention(c, kind),)* }
            }
        }

        impl Net {
            fn forward(&self, x: Tensor<4>) -> Output {
                match self { $(Net::$variant(m) => FamilyNet::forward(m, x),)* }
            }
            fn forward_features(&self, x: Tensor<4>) -> Features {
                match self { $(Net::$variant(m) => FamilyNet::forward_features(m, x),)* }
            }
            fn forward_head(&self, f: Features) -> Result<Output, String> {
                match self { $(Net::$variant(m) => FamilyNet::forward_head(m, f),)* }
            }
            fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
                match self { $(Net::$variant(m) => FamilyNet::forward_intermediates(m, x),)* }
            }
        }

        /// Every family's registered variants, in list order.
        pub(crate) fn family_variants() -> Vec<&'static [ModelInfo]> {
            vec![$(<$config as Family>::variants(),)*]
        }
    };
}

families! {
    Pan(crate::pan::PanConfig, crate::pan::Pan),
    Imdn(crate::imdn::ImdnConfig, crate::imdn::Imdn),
    A2n(crate::a2n::A2nConfig, crate::a2n::A2n),
    Vapsr(crate::vapsr::VapsrConfig, crate::vapsr::Vapsr),
    Bsrn(crate::bsrn::BsrnConfig, crate::bsrn::Bsrn),
    Rcan(crate::rcan::RcanConfig, crate::rcan::Rcan),
    Han(crate::han::HanConfig, crate::han::Han),
    Hat(crate::hat::HatConfig, crate::hat::Hat),
    ResNet(crate::resnet::ResNetConfig, crate::resnet::ResNet),
    ResidualAttention(
        crate::residual_attention_net::ResidualAttentionNetConfig,
        crate::residual_attention_net::ResidualAttentionNet
    ),
    Vit(crate::vit::VitConfig, crate::vit::VisionTransformer),
    Swin(crate::swin::SwinConfig, crate::swin::Swin),
    Levit(crate::levit::LevitConfig, crate::levit::Levit),
    Nat(crate::nat::NatConfig, crate::nat::Nat),
    BiFormer(crate::biformer::BiFormerConfig, crate::biformer::BiFormer),
    HaloNet(crate::halonet::HaloNetConfig, crate::halonet::HaloNet),
    UNet(crate::unet::UNetConfig, crate::unet::UNet),
    EncoderUNet(crate::encoder_unet::EncoderUNetConfig, crate::encoder_unet::EncoderUNet),
    SwinUNet(crate::swin_unet::SwinUNetConfig, crate::swin_unet::SwinUNet),
}

/// The input sizes a model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSize {
    /// Any size (padded internally where the architecture needs multiples).
    Any,
    /// Exactly this `[H, W]` (attention biases tied to one resolution, as LeViT's).
    Fixed([usize; 2]),
    /// At least this `[H, W]` (every level must hold a full attention window).
    AtLeast([usize; 2]),
    /// Any size, zero-padded at the bottom and right to a multiple of this (HaloNet's blocks
    /// must tile every attention stage); feature maps are those of the padded image.
    PaddedTo(usize),
}

impl InputSize {
    /// An error message when `[h, w]` is not accepted.
    pub fn check(self, h: usize, w: usize) -> Result<(), String> {
        match self {
            InputSize::Fixed([fh, fw]) if (h, w) != (fh, fw) => Err(format!(
                "this model takes {fh}×{fw} inputs only, got {h}×{w}"
            )),
            InputSize::AtLeast([mh, mw]) if h < mh || w < mw => Err(format!(
                "this model needs inputs of at least {mh}×{mw}, got {h}×{w}"
            )),
            _ if h == 0 || w == 0 => Err(format!("empty input ({h}×{w})")),
            _ => Ok(()),
        }
    }
}

/// What a model's `forward` returns, by task.
#[derive(Debug, Clone)]
pub enum Output {
    /// An image batch `[N, C, H, W]` (super-resolution; not clamped).
    Image(Tensor<4>),
    /// Class logits `[N, classes]`.
    Logits(Tensor<2>),
    /// Per-pixel class logits `[N, classes, H, W]` (segmentation).
    Mask(Tensor<4>),
    /// Multi-scale feature maps, finest first (a `features_only` model).
    Features(Vec<Tensor<4>>),
}

impl Output {
    /// The image, for image-to-image models.
    pub fn into_image(self) -> Option<Tensor<4>> {
        match self {
            Output::Image(t) => Some(t),
            _ => None,
        }
    }

    /// The logits, for classifiers.
    pub fn into_logits(self) -> Option<Tensor<2>> {
        match self {
            Output::Logits(t) => Some(t),
            _ => None,
        }
    }

    /// The mask logits, for segmentation models.
    pub fn into_mask(self) -> Option<Tensor<4>> {
        match self {
            Output::Mask(t) => Some(t),
            _ => None,
        }
    }

    /// The feature maps, for `features_only` models.
    pub fn into_features(self) -> Option<Vec<Tensor<4>>> {
        match self {
            Output::Features(t) => Some(t),
            _ => None,
        }
    }

    /// Shape of the tensor (of the first map for features).
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Output::Image(t) | Output::Mask(t) => t.dims().to_vec(),
            Output::Logits(t) => t.dims().to_vec(),
            Output::Features(maps) => maps.first().map(|t| t.dims().to_vec()).unwrap_or_default(),
        }
    }

    /// The values, row-major (of the first map for features).
    pub fn into_data(self) -> TensorData {
        match self {
            Output::Image(t) | Output::Mask(t) => t.into_data(),
            Output::Logits(t) => t.into_data(),
            Output::Features(maps) => maps
                .into_iter()
                .next()
                .map(|t| t.into_data())
                .unwrap_or_else(|| TensorData::new(Vec::<f32>::new(), [0])),
        }
    }
}

/// What the head consumes: timm's `forward_features` output.
#[derive(Debug, Clone)]
pub enum Features {
    /// The last stage's map `[N, C, h, w]` (CNNs, hierarchical transformers).
    Map(Tensor<4>),
    /// All tokens `[N, 1 + h·w, D]`, class token first (ViT).
    Tokens(Tensor<3>),
    /// Super-resolution: low-resolution features and the input (for the global skip).
    Sr {
        /// `[N, C, h, w]` features.
        features: Tensor<4>,
        /// The input image `[N, 3, h, w]`.
        input: Tensor<4>,
    },
}

impl Features {
    /// The features as one NCHW map (ViT: the patch tokens on their grid is not recoverable
    /// here, so tokens are returned as `[N, D, 1 + h·w, 1]`).
    pub fn into_map(self) -> Tensor<4> {
        match self {
            Features::Map(t) => t,
            Features::Sr { features, .. } => features,
            Features::Tokens(t) => {
                let [n, l, d] = t.dims();
                t.swap_dims(1, 2).reshape([n, d, l, 1])
            }
        }
    }
}

/// timm's `create_model` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// A fresh classifier with this many outputs (0: none, `forward` returns pooled features).
    /// Loading a checkpoint then skips only its head, and says so.
    pub num_classes: Option<usize>,
    /// Input image channels; the stem is adapted from a 3-channel checkpoint as timm does
    /// (`adapt_input_conv`: summed for 1 channel, repeated and rescaled otherwise).
    pub in_chans: Option<usize>,
    /// `forward` returns the multi-scale feature maps ([`Output::Features`]).
    pub features_only: bool,
    /// Which maps of [`Model::feature_info`] a `features_only` model returns (all by default;
    /// negative indices are not supported: count from the start).
    pub out_indices: Option<Vec<usize>>,
    /// Attention in every decoder block of a segmentation decoder (`unet_<encoder>`: smp's
    /// `decoder_attention_type`, any kind of the zoo). Fresh blocks: a checkpoint without them
    /// loads, and the summary of the load lists nothing for them.
    pub decoder_attention: Option<gaze_blocks::attention::AttentionKind>,
}

impl ModelOptions {
    /// Default options: the registered model as published.
    pub fn new() -> Self {
        Self::default()
    }
    /// See [`ModelOptions::num_classes`].
    pub fn num_classes(mut self, n: usize) -> Self {
        self.num_classes = Some(n);
        self
    }
    /// See [`ModelOptions::in_chans`].
    pub fn in_chans(mut self, c: usize) -> Self {
        self.in_chans = Some(c);
        self
    }
    /// See [`ModelOptions::features_only`].
    pub fn features_only(mut self) -> Self {
        self.features_only = true;
        self
    }
    /// See [`ModelOptions::decoder_attention`].
    pub fn decoder_attention(mut self, kind: gaze_blocks::attention::AttentionKind) -> Self {
        self.decoder_attention = Some(kind);
        self
    }
    /// See [`ModelOptions::out_indices`].
    pub fn out_indices(mut self, indices: &[usize]) -> Self {
        self.features_only = true;
        self.out_indices = Some(indices.to_vec());
        self
    }
}

/// Why a model could not be created or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No registered model has this name.
    #[error(transparent)]
    Unknown(#[from] crate::registry::UnknownModel),
    /// An option the model does not support.
    #[error("{model}: {message}")]
    Options {
        /// The model.
        model: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An input the model does not accept.
    #[error("{model}: {message}")]
    Input {
        /// The model.
        model: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What loading a checkpoint did besides filling every parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Checkpoint keys of the classifier head left out because the model has a fresh head
    /// ([`ModelOptions::num_classes`]); for an encoder's checkpoint, every key without a place
    /// in the model (its head, blocks beyond the model's depth).
    pub skipped_head: Vec<String>,
    /// Checkpoint keys of the input convolution adapted to [`ModelOptions::in_chans`].
    pub adapted_stem: Vec<String>,
    /// The checkpoint was the encoder's classification checkpoint: it filled the encoder only
    /// (its head left out, listed in `skipped_head`), the decoder keeps its initialisation.
    pub encoder_only: bool,
    /// The checkpoint was an ONNX export whose parameters were recovered from its graph (the
    /// exporter renamed, transposed or folded them): how.
    pub onnx_graph: Option<gaze_weights::RecoverySummary>,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = &self.onnx_graph {
            let mut how = format!(
                "parameters recovered from the ONNX graph ({} layers by name, {} by order",
                r.by_name, r.by_order
            );
            if r.folded_norms > 0 {
                how.push_str(&format!(
                    ", {} BatchNorms folded into convolutions restored",
                    r.folded_norms
                ));
            }
            if r.shared > 0 {
                how.push_str(&format!(", {} merged equal tensors", r.shared));
            }
            if r.never_run > 0 {
                how.push_str(&format!(
                    ", {} layers the forward never runs set to zero",
                    r.never_run
                ));
            }
            how.push(')');
            parts.push(how);
        }
        if self.encoder_only {
            parts.push(
                "a classification checkpoint: loaded into the encoder (the rest of the model keeps its initialisation)"
                    .to_string(),
            );
        }
        if !self.skipped_head.is_empty() {
            const SHOWN: usize = 6;
            let mut keys = self.skipped_head[..self.skipped_head.len().min(SHOWN)].join(", ");
            if self.skipped_head.len() > SHOWN {
                keys.push_str(&format!(", … ({} in all)", self.skipped_head.len()));
            }
            parts.push(if self.encoder_only {
                format!("not loaded (no place in this model): {keys}")
            } else {
                format!("classifier head not loaded (fresh head): {keys}")
            });
        }
        if !self.adapted_stem.is_empty() {
            parts.push(format!(
                "input convolution adapted to the model's channels: {}",
                self.adapted_stem.join(", ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A registered model: its registry entry, its configuration, its options and its network.
#[derive(Module, Debug)]
pub struct Model {
    net: Net,
    #[module(skip)]
    info: &'static ModelInfo,
    #[module(skip)]
    config: ModelConfig,
    #[module(skip)]
    options: ModelOptions,
}

impl Model {
    /// Builds the entry's model with `options`, random weights.
    pub(crate) fn build(
        info: &'static ModelInfo,
        options: &ModelOptions,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let config = configure(info, options)?;
        if options.features_only {
            let levels = config.feature_info().len();
            if levels == 0 {
                return Err(ModelError::Options {
                    model: info.name,
                    message: "has no multi-scale features (features_only)".into(),
                });
            }
            if let Some(bad) = options.out_indices.iter().flatten().find(|&&i| i >= levels) {
                return Err(ModelError::Options {
                    model: info.name,
                    message: format!("out_indices {bad} is out of range: {levels} feature levels"),
                });
            }
        }
        let net = config.init(device);
        Ok(Model {
            net,
            info,
            config,
            options: options.clone(),
        })
    }

    /// The registry entry (name, task, paper, parameter count).
    pub fn info(&self) -> &'static ModelInfo {
        self.info
    }

    /// The configuration the network was built from (options applied).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The options the model was created with.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The network, for family-specific calls.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// What the model computes, with its options (e.g. a fresh head's class count).
    pub fn task(&self) -> Task {
        match (self.info.task, self.config.num_classes()) {
            (Task::Classification { .. }, Some(n)) => Task::Classification { num_classes: n },
            (Task::Segmentation { .. }, Some(n)) => Task::Segmentation { num_classes: n },
            (task, _) => task,
        }
    }

    /// The upsampling factor of a super-resolution model.
    pub fn scale(&self) -> Option<usize> {
        match self.info.task {
            Task::SuperResolution { scale } => Some(scale),
            _ => None,
        }
    }

    /// Image channels in.
    pub fn in_chans(&self) -> usize {
        self.config.in_chans()
    }

    /// The input sizes the model accepts.
    pub fn input_size(&self) -> InputSize {
        self.config.input_size()
    }

    /// For SR models with a finite receptive field: its radius in input pixels (tiles with
    /// this much context give the untiled output exactly); `None` for models that look at the
    /// whole image (global pooling), whose tiles are blended.
    pub fn receptive_radius(&self) -> Option<usize> {
        self.config.receptive_radius()
    }

    /// Number of parameters, counted as PyTorch does (BatchNorm running statistics are
    /// buffers, not parameters).
    pub fn num_params(&self) -> usize {
        gaze_weights::count_parameters(&self.net)
    }

    /// Channels and stride of each map of [`Model::forward_intermediates`] (of the selected
    /// `out_indices` for a `features_only` model).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        let all = self.config.feature_info();
        match &self.options.out_indices {
            Some(indices) if self.options.features_only => {
                indices.iter().map(|&i| all[i]).collect()
            }
            _ => all,
        }
    }

    /// The key map between the official checkpoint's names and the module's paths.
    pub fn key_map(&self) -> KeyMap {
        self.config.key_map()
    }

    /// Checks that `dims` is an input the model accepts: `[N, in_chans, H, W]` with a size
    /// the architecture takes.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        let [n, c, h, w] = dims;
        let err = |message: String| ModelError::Input {
            model: self.info.name,
            message,
        };
        if n == 0 {
            return Err(err("empty batch".into()));
        }
        if c != self.in_chans() {
            return Err(err(format!(
                "expects {} input channels, got {c}",
                self.in_chans()
            )));
        }
        self.input_size().check(h, w).map_err(err)
    }

    /// The model's output: logits, the upscaled image (unclamped), a mask, or the feature maps
    /// of a `features_only` model. An input the model does not take is an error.
    pub fn forward(&self, x: Tensor<4>) -> Result<Output, ModelError> {
        self.check_input(x.dims())?;
        if self.options.features_only {
            let maps = on_worker(x, |x| self.net.forward_intermediates(x));
            return Ok(Output::Features(self.select(maps)));
        }
        Ok(on_worker(x, |x| self.net.forward(x)))
    }

    /// What the head consumes (timm's `forward_features`).
    pub fn forward_features(&self, x: Tensor<4>) -> Result<Features, ModelError> {
        self.check_input(x.dims())?;
        Ok(on_worker(x, |x| self.net.forward_features(x)))
    }

    /// The head on [`Model::forward_features`]' output (timm's `forward_head`); features of
    /// another kind than this family's are an error.
    pub fn forward_head(&self, features: Features) -> Result<Output, ModelError> {
        self.net
            .forward_head(features)
            .map_err(|message| ModelError::Input {
                model: self.info.name,
                message,
            })
    }

    /// Multi-scale feature maps (NCHW, finest first) as described by
    /// [`Model::feature_info`]; empty for models without a feature pyramid (SR networks).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>, ModelError> {
        self.check_input(x.dims())?;
        let maps = on_worker(x, |x| self.net.forward_intermediates(x));
        Ok(self.select(maps))
    }

    fn select(&self, maps: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
        match &self.options.out_indices {
            Some(indices) if self.options.features_only => {
                indices.iter().map(|&i| maps[i].clone()).collect()
            }
            _ => maps,
        }
    }

    /// Moves the weights to another device.
    pub fn to_device(self, device: &Device) -> Self {
        Module::to_device(self, device)
    }

    /// Loads the official checkpoint (any format [`gaze_weights::Checkpoint`] reads), strictly.
    /// With a fresh head or other input channels ([`ModelOptions`]) the head is skipped or the
    /// stem adapted; [`Model::load_weights_with_summary`] says which keys.
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        self.load_weights_with_summary(path).map(|(m, _)| m)
    }

    /// [`Model::load_weights`], also returning what was skipped or adapted.
    pub fn load_weights_with_summary(
        self,
        path: impl AsRef<Path>,
    ) -> Result<(Self, LoadSummary), LoadError> {
        let path = path.as_ref();
        if gaze_weights::Format::detect(path).ok().flatten() == Some(gaze_weights::Format::Burnpack)
        {
            return self.load_burnpack(path);
        }
        let mut checkpoint = Checkpoint::open(path)?;
        let mut onnx_graph = None;
        if checkpoint.format == gaze_weights::Format::Onnx {
            if self.has_every_key(&checkpoint) {
                // The names are the state dict's: read those, not the graph's other constants
                // (shapes, scalars, folded buffers).
                let wanted: std::collections::BTreeSet<String> =
                    gaze_weights::official_shapes(&self.net, &self.key_map())
                        .into_iter()
                        .map(|(key, _)| pytorch_name(&key))
                        .collect();
                checkpoint.tensors.retain(|name, _| wanted.contains(name));
            } else {
                let (recovered, summary) = self.recover_onnx(path)?;
                checkpoint = recovered;
                onnx_graph = Some(summary);
            }
        }
        self.load_checkpoint(checkpoint)
            .map(|(model, mut summary)| {
                summary.onnx_graph = onnx_graph;
                (model, summary)
            })
            .map_err(|(report, hint)| LoadError::Mismatch {
                path: path.display().to_string(),
                report,
                hint,
            })
    }

    /// Whether the checkpoint names every parameter of the model with its shape (an ONNX file
    /// that kept the state dict's names loads by name).
    fn has_every_key(&self, checkpoint: &Checkpoint) -> bool {
        gaze_weights::official_shapes(&self.net, &self.key_map())
            .iter()
            .all(|(key, shape)| {
                checkpoint
                    .tensors
                    .get(&pytorch_name(key))
                    .is_some_and(|t| t.shape.to_vec() == *shape)
            })
    }

    /// The official state dict recovered from an ONNX export's graph. The graph is the
    /// published model's, so a model with a fresh head or other input channels is matched
    /// against the registered configuration, then adapted as for any checkpoint.
    fn recover_onnx(
        &self,
        path: &Path,
    ) -> Result<(Checkpoint, gaze_weights::RecoverySummary), LoadError> {
        let reference = configure(self.info, &ModelOptions::default())
            .expect("registered configurations build");
        let same = reference.num_classes() == self.config.num_classes()
            && reference.in_chans() == self.config.in_chans();
        let fresh;
        let (net, keys, config) = if same {
            (&self.net, self.key_map(), &self.config)
        } else {
            fresh = reference.init(&Device::flex());
            (&fresh, reference.key_map(), &reference)
        };
        let tables = |input: [usize; 2]| config.gathered_tables(input);
        let mut hints = gaze_weights::OnnxHints {
            never_run: Vec::new(),
            gathered: Some(&tables),
        };
        match gaze_weights::recover_onnx_with_hints(path, net, &keys, self.info.name, &hints) {
            // Layers built but never run (RAN's identity-shortcut projections) are in no
            // export; only then is the forward probed for them.
            Err(LoadError::Graph { .. }) => {
                hints.never_run = layers_never_run(config, self.info);
                gaze_weights::recover_onnx_with_hints(path, net, &keys, self.info.name, &hints)
            }
            other => other,
        }
    }

    /// Loads an opened checkpoint; on a mismatch, the strict report and which registered model
    /// the checkpoint fits, if any.
    pub fn load_checkpoint(
        self,
        mut checkpoint: Checkpoint,
    ) -> Result<(Self, LoadSummary), (LoadReport, Option<String>)> {
        let keys = self.key_map();
        let mut summary = LoadSummary::default();
        let reference = configure(self.info, &ModelOptions::default())
            .expect("registered configurations build");
        // Keys whose shapes depend on the options: the head (num_classes) and the stem
        // (in_chans). Found by comparing the shapes of both configurations, so no family has
        // to name them.
        let ours: BTreeMap<String, Vec<usize>> = gaze_weights::official_shapes(&self.net, &keys)
            .into_iter()
            .collect();
        // Shapes only: nothing is initialised, so the device does not matter.
        let device = Device::flex();
        let published: BTreeMap<String, Vec<usize>> =
            gaze_weights::official_shapes(&reference.init(&device), &reference.key_map())
                .into_iter()
                .collect();
        if self.config.num_classes() != reference.num_classes() {
            let head: Vec<String> = published
                .iter()
                .filter(|(k, s)| ours.get(*k) != Some(*s))
                .map(|(k, _)| k.clone())
                .filter(|k| !is_stem_key(k, &published, &ours))
                .collect();
            for key in head {
                // A checkpoint that already has this head (a fine-tuned model saved by gaze)
                // loads it; only a head of another size is left out.
                let fits = checkpoint
                    .tensors
                    .get(&key)
                    .is_some_and(|t| ours.get(&key).is_some_and(|s| t.shape.to_vec() == *s));
                if !fits && checkpoint.tensors.remove(&key).is_some() {
                    summary.skipped_head.push(key);
                }
            }
        }
        // An encoder-decoder given its encoder's classification checkpoint: its keys go where
        // the family places them, its classifier head is left out, the rest of the model keeps
        // its initialisation. The checkpoint is taken for the encoder's when more of its
        // tensors fit the model that way than under their own names.
        let mut filled: Option<std::collections::BTreeSet<String>> = None;
        let checkpoint_names: Vec<String> = checkpoint.tensors.keys().cloned().collect();
        if let Some(pairs) = self.config.encoder_checkpoint_keys(&checkpoint_names) {
            let fits = |src: &str, dst: &str| {
                checkpoint
                    .tensors
                    .get(src)
                    .is_some_and(|t| ours.get(dst).is_some_and(|s| t.shape.to_vec() == *s))
            };
            let direct = checkpoint_names.iter().filter(|k| fits(k, k)).count();
            let placed = pairs.iter().filter(|(src, dst)| fits(src, dst)).count();
            if placed > direct {
                let mut tensors = std::mem::take(&mut checkpoint.tensors);
                let mut used = std::collections::BTreeSet::new();
                for (src, dst) in &pairs {
                    if ours.contains_key(dst) || keys.is_ignored(dst) {
                        if let Some(t) = tensors.get(src) {
                            checkpoint.tensors.insert(dst.clone(), t.clone());
                            used.insert(src.clone());
                        }
                    }
                }
                tensors.retain(|k, _| !used.contains(k));
                summary.skipped_head.extend(tensors.into_keys());
                filled = Some(checkpoint.tensors.keys().cloned().collect());
                summary.encoder_only = true;
            }
        }
        let allow_missing: Vec<String> = ours
            .iter()
            .filter(|(k, s)| {
                published.get(*k) != Some(*s) || filled.as_ref().is_some_and(|f| !f.contains(*k))
            })
            .map(|(k, _)| k.clone())
            .filter(|k| !is_stem_key(k, &published, &ours))
            .collect();
        let in_chans = self.in_chans();
        if in_chans != reference.in_chans() {
            for (key, shape) in &ours {
                if !is_stem_key(key, &published, &ours) {
                    continue;
                }
                if let Some(tensor) = checkpoint.tensors.get_mut(key) {
                    if tensor.shape.to_vec().get(1) != Some(&shape[1]) {
                        *tensor = adapt_input_conv(tensor.clone(), in_chans)
                            .map_err(|e| (one_error(key, e), None))?;
                        summary.adapted_stem.push(key.clone());
                    }
                }
            }
        }
        let Model {
            net,
            info,
            config,
            options,
        } = self;
        let checkpoint_keys: Vec<(String, Vec<usize>)> = checkpoint
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.to_vec()))
            .collect();
        match gaze_weights::apply_checkpoint_allowing(net, checkpoint, &keys, &|path| {
            allow_missing.contains(&pytorch_name(&keys.unmap(path)))
        }) {
            Ok(net) => Ok((
                Model {
                    net,
                    info,
                    config,
                    options,
                },
                summary,
            )),
            Err(mut report) => {
                // Missing parameters in the checkpoint's naming, as the user sees its keys.
                report.missing = report
                    .missing
                    .iter()
                    .map(|path| pytorch_name(&keys.unmap(path)))
                    .collect();
                report.missing.sort();
                let decoder_attention = options.decoder_attention.is_none()
                    && report
                        .unexpected
                        .iter()
                        .any(|k| k.starts_with("decoder.") && k.contains(".attention1."));
                let hint = if decoder_attention {
                    Some(
                        "the checkpoint's decoder has attention blocks: create the model with the decoder attention it was trained with (`--decoder-attention KIND`, e.g. scse)"
                            .to_string(),
                    )
                } else {
                    crate::registry::which_model_fits(&checkpoint_keys, &keys)
                };
                Err((report, hint))
            }
        }
    }

    /// The weights as an official state dict (PyTorch layout and key names).
    pub fn official_state_dict(&self) -> Result<Vec<(String, TensorData)>, SaveError> {
        gaze_weights::official_state_dict(&self.net, &self.key_map())
    }

    /// Saves the weights as safetensors under the official key names, so timm or the
    /// official code loads them (`model.load_state_dict(safetensors.torch.load_file(path))`),
    /// and gaze loads them back with [`Model::load_weights`]. Written atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        gaze_weights::save_safetensors(
            &self.net,
            path,
            &self.key_map(),
            &[("format", "pt"), ("gaze_model", self.info.name)],
        )
    }

    /// Saves the weights in Burn's burnpack format (module paths, Burn layout), atomically;
    /// [`Model::load_weights`] reads it back.
    pub fn save_burnpack(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        use burn::store::{BurnpackStore, ModuleSnapshot};
        let path = path.as_ref();
        let mut store = BurnpackStore::from_bytes(None).metadata("gaze_model", self.info.name);
        self.net
            .save_into(&mut store)
            .map_err(|e| SaveError::Tensor {
                key: String::new(),
                message: e.to_string(),
            })?;
        let bytes = store.get_bytes().map_err(|e| SaveError::Tensor {
            key: String::new(),
            message: e.to_string(),
        })?;
        gaze_weights::atomic_write::write_atomically(path, |f| std::io::Write::write_all(f, &bytes))
            .map_err(|source| SaveError::Io {
                path: path.display().to_string(),
                source,
            })
    }

    /// Loads a burnpack written by [`Model::save_burnpack`], strictly.
    fn load_burnpack(mut self, path: &Path) -> Result<(Self, LoadSummary), LoadError> {
        use burn::store::{BurnpackStore, ModuleSnapshot};
        let mut store = BurnpackStore::from_file(path).auto_extension(false);
        let result = self.net.load_from(&mut store);
        let fail = |message: String| LoadError::Corrupt {
            path: path.display().to_string(),
            format: gaze_weights::Format::Burnpack,
            message,
        };
        match result {
            Ok(r) if r.errors.is_empty() && r.missing.is_empty() && r.unused.is_empty() => {
                Ok((self, LoadSummary::default()))
            }
            Ok(r) => {
                let report = LoadReport {
                    missing: r.missing.iter().map(|(p, _)| p.clone()).collect(),
                    unexpected: r.unused.clone(),
                    mismatched: Vec::new(),
                    other: r.errors.iter().map(|e| e.to_string()).collect(),
                };
                Err(LoadError::Mismatch {
                    path: path.display().to_string(),
                    report,
                    hint: None,
                })
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// A module path's tensor name as PyTorch saves it (norms' `gamma`/`beta` are `weight`/`bias`).
fn pytorch_name(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => key.to_string(),
    }
}

/// Whether `key` is an input-convolution weight: present in both configurations with a
/// different input-channel dimension only.
fn is_stem_key(
    key: &str,
    published: &BTreeMap<String, Vec<usize>>,
    ours: &BTreeMap<String, Vec<usize>>,
) -> bool {
    match (published.get(key), ours.get(key)) {
        (Some(a), Some(b)) => {
            a.len() == 4 && b.len() == 4 && a[0] == b[0] && a[2..] == b[2..] && a[1] != b[1]
        }
        _ => false,
    }
}

fn one_error(key: &str, message: String) -> LoadReport {
    LoadReport {
        other: vec![format!("{key}: {message}")],
        ..LoadReport::default()
    }
}

/// timm's `adapt_input_conv`: a 3-channel stem summed over its input channels for one
/// channel, otherwise repeated along them, cut to `in_chans` and rescaled by `3 / in_chans`.
fn adapt_input_conv(
    tensor: burn::store::burn_pack::Tensor,
    in_chans: usize,
) -> Result<burn::store::burn_pack::Tensor, String> {
    let name = tensor.name.clone();
    let data = burn::store::bridge::into_data(tensor).map_err(|e| e.to_string())?;
    let device = Device::flex();
    let w = Tensor::<4>::from_data(data.convert::<f32>(), &device);
    let [o, i, kh, kw] = w.dims();
    let adapted = if in_chans == 1 {
        if i > 3 {
            if i % 3 != 0 {
                return Err(format!("cannot adapt {i} input channels to 1"));
            }
            w.reshape([o, i / 3, 3, kh * kw])
                .sum_dim(2)
                .reshape([o, i / 3, kh, kw])
        } else {
            w.sum_dim(1)
        }
    } else {
        if i != 3 {
            return Err(format!(
                "cannot adapt a {i}-channel input convolution to {in_chans} channels"
            ));
        }
        let repeat = in_chans.div_ceil(3);
        w.repeat_dim(1, repeat)
            .slice([0..o, 0..in_chans, 0..kh, 0..kw])
            .mul_scalar(3.0 / in_chans as f32)
    };
    Ok(burn::store::bridge::from_data(
        adapted.into_data(),
        name,
        None,
    ))
}

/// The entry's configuration with the options applied.
fn configure(info: &'static ModelInfo, options: &ModelOptions) -> Result<ModelConfig, ModelError> {
    let mut config = info.config();
    if let Some(n) = options.num_classes {
        config
            .set_num_classes(n)
            .map_err(|message| ModelError::Options {
                model: info.name,
                message: format!("num_classes: {message}"),
            })?;
    }
    if let Some(kind) = options.decoder_attention {
        config
            .set_decoder_attention(kind)
            .map_err(|message| ModelError::Options {
                model: info.name,
                message: format!("decoder attention: {message}"),
            })?;
    }
    if let Some(c) = options.in_chans {
        if c == 0 {
            return Err(ModelError::Options {
                model: info.name,
                message: "in_chans must be at least 1".into(),
            });
        }
        config.set_in_chans(c);
    }
    Ok(config)
}

/// The layers of `config`'s network its forward never runs ([`gaze_weights::unused_layers`]):
/// one forward and backward pass of a fresh network (which layers run does not depend on the
/// weights) on a random input of the model's pretrained (or smallest) size.
fn layers_never_run(config: &ModelConfig, info: &ModelInfo) -> Vec<String> {
    let device = Device::flex().autodiff();
    let probe = config.init(&device);
    let [h, w] = match (info.data.image(), config.input_size()) {
        (Some(image), _) => [image.input_size[1], image.input_size[2]],
        (None, InputSize::Fixed(size) | InputSize::AtLeast(size)) => size,
        (None, InputSize::PaddedTo(multiple)) => [multiple.max(32); 2],
        (None, InputSize::Any) => [32, 32],
    };
    let x = Tensor::<4>::random(
        [1, config.in_chans(), h, w],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let total = match probe.forward(x) {
        Output::Image(t) | Output::Mask(t) => t.sum(),
        Output::Logits(t) => t.sum(),
        Output::Features(maps) => maps
            .into_iter()
            .map(|t| t.sum())
            .reduce(|a, b| a + b)
            .expect("a model has at least one feature level"),
    };
    gaze_weights::unused_layers(&probe, &total.backward())
}
