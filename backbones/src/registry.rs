//! The model registry: every model gaze can build, by name, with its task, paper, size,
//! preprocessing and where its official weights are published. Each family file declares its
//! variants ([`crate::family::Family::variants`]); `gaze list` prints this table.

use std::fmt;
use std::sync::OnceLock;

use burn::prelude::*;
use gaze_weights::KeyMap;

use crate::model::{family_variants, Model, ModelConfig, ModelError, ModelOptions};

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Image super-resolution by an integer factor.
    SuperResolution {
        /// Upsampling factor.
        scale: usize,
    },
    /// Image classification.
    Classification {
        /// Number of classes.
        num_classes: usize,
    },
    /// Semantic segmentation: per-pixel class logits.
    Segmentation {
        /// Number of classes (1 for a binary mask).
        num_classes: usize,
    },
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::SuperResolution { scale } => write!(f, "super-resolution x{scale}"),
            Task::Classification { num_classes } => write!(f, "classification ({num_classes})"),
            Task::Segmentation { num_classes } => write!(f, "segmentation ({num_classes})"),
        }
    }
}

/// Resampling filter of the eval transform (PIL's filters, as timm names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// PIL `NEAREST`.
    Nearest,
    /// PIL `BOX`.
    Box,
    /// PIL `BILINEAR` (triangle filter, antialiased when reducing).
    Bilinear,
    /// PIL `HAMMING`.
    Hamming,
    /// PIL `BICUBIC` (Keys, a = -0.5, antialiased when reducing).
    Bicubic,
    /// PIL `LANCZOS` (3 lobes).
    Lanczos,
}

impl Interpolation {
    /// timm's name (`"bicubic"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Box => "box",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Hamming => "hamming",
            Interpolation::Bicubic => "bicubic",
            Interpolation::Lanczos => "lanczos",
        }
    }

    /// Parses timm's name.
    pub fn from_name(name: &str) -> Option<Interpolation> {
        [
            Interpolation::Nearest,
            Interpolation::Box,
            Interpolation::Bilinear,
            Interpolation::Hamming,
            Interpolation::Bicubic,
            Interpolation::Lanczos,
        ]
        .into_iter()
        .find(|i| i.name() == name)
    }
}

/// How the eval transform fits an image before the centre crop (timm's `crop_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropMode {
    /// Resize the short side to `size / crop_pct` (aspect kept), then crop.
    Center,
    /// Resize both sides to `size / crop_pct` (aspect changed), then crop.
    Squash,
    /// Resize the long side to `size / crop_pct` (aspect kept), then crop or pad with the mean.
    Border,
}

impl CropMode {
    /// timm's name.
    pub fn name(self) -> &'static str {
        match self {
            CropMode::Center => "center",
            CropMode::Squash => "squash",
            CropMode::Border => "border",
        }
    }

    /// Parses timm's name.
    pub fn from_name(name: &str) -> Option<CropMode> {
        [CropMode::Center, CropMode::Squash, CropMode::Border]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The class names a pretrained head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSet {
    /// The 1000 ImageNet-1k classes (timm's `imagenet-1k`).
    Imagenet1k,
    /// The 10 CIFAR-10 classes.
    Cifar10,
}

const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// A classifier's eval transform (timm's pretrained config): resize to `size / crop_pct` (see
/// [`CropMode`]), centre crop, scale to [0, 1], normalise with `mean` and `std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageConfig {
    /// `[C, H, W]` the model was trained at.
    pub input_size: [usize; 3],
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Centre-crop fraction.
    pub crop_pct: f64,
    /// How the image is fitted before the crop.
    pub crop_mode: CropMode,
    /// Per-channel mean (of [0, 1] values).
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// The classes of the pretrained head.
    pub labels: LabelSet,
}

/// How images are prepared for the model (timm's pretrained config of the default tag).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataConfig {
    /// A classifier's eval transform.
    Classifier(ImageConfig),
    /// Image-to-image models: RGB in [0, 1] (the model scales internally where its
    /// reference does), any size.
    UnitRange,
    /// Dense prediction (segmentation) at any size: RGB in [0, 1], normalised per channel by
    /// `mean` and `std`; no resize, no crop.
    Dense {
        /// Per-channel mean (of [0, 1] values).
        mean: [f64; 3],
        /// Per-channel standard deviation.
        std: [f64; 3],
    },
}

impl DataConfig {
    /// ImageNet mean and std, bilinear, crop 0.875, 224² (timm's `_cfg` default).
    pub const IMAGENET: DataConfig = DataConfig::Classifier(ImageConfig {
        input_size: [3, 224, 224],
        interpolation: Interpolation::Bilinear,
        crop_pct: 0.875,
        crop_mode: CropMode::Center,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        labels: LabelSet::Imagenet1k,
    });

    /// Bicubic, crop 0.9 (timm's DeiT, Swin and LeViT tags).
    pub const IMAGENET_BICUBIC: DataConfig = DataConfig::IMAGENET
        .with_interpolation(Interpolation::Bicubic)
        .with_size(224, 0.9);

    /// Inception normalisation (mean = std = 0.5), bicubic, crop 0.9 (AugReg ViTs).
    pub const INCEPTION: DataConfig = DataConfig::IMAGENET_BICUBIC
        .with_size(224, 0.9)
        .with_mean_std([0.5; 3], [0.5; 3]);

    /// The classifier transform, if the model has one.
    pub const fn image(&self) -> Option<&ImageConfig> {
        match self {
            DataConfig::Classifier(c) => Some(c),
            DataConfig::UnitRange | DataConfig::Dense { .. } => None,
        }
    }

    /// The per-channel normalisation `(mean, std)` (`[0; 3]`, `[1; 3]` for [0, 1] inputs).
    pub const fn mean_std(&self) -> ([f64; 3], [f64; 3]) {
        match self {
            DataConfig::Classifier(c) => (c.mean, c.std),
            DataConfig::Dense { mean, std } => (*mean, *std),
            DataConfig::UnitRange => ([0.0; 3], [1.0; 3]),
        }
    }

    /// A copy with another square input size and crop fraction.
    pub const fn with_size(self, side: usize, crop: f64) -> DataConfig {
        match self {
            DataConfig::Classifier(c) => DataConfig::Classifier(ImageConfig {
                input_size: [c.input_size[0], side, side],
                crop_pct: crop,
                ..c
            }),
            unit => unit,
        }
    }

    /// A copy with another resampling filter.
    pub const fn with_interpolation(self, interpolation: Interpolation) -> DataConfig {
        match self {
            DataConfig::Classifier(c) => DataConfig::Classifier(ImageConfig { interpolation, ..c }),
            unit => unit,
        }
    }

    /// A copy with another crop mode.
    pub const fn with_crop_mode(self, crop_mode: CropMode) -> DataConfig {
        match self {
            DataConfig::Classifier(c) => DataConfig::Classifier(ImageConfig { crop_mode, ..c }),
            unit => unit,
        }
    }

    /// A copy with another normalisation.
    pub const fn with_mean_std(self, mean: [f64; 3], std: [f64; 3]) -> DataConfig {
        match self {
            DataConfig::Classifier(c) => DataConfig::Classifier(ImageConfig { mean, std, ..c }),
            DataConfig::Dense { .. } => DataConfig::Dense { mean, std },
            unit => unit,
        }
    }

    /// A copy with another label set.
    pub const fn with_labels(self, labels: LabelSet) -> DataConfig {
        match self {
            DataConfig::Classifier(c) => DataConfig::Classifier(ImageConfig { labels, ..c }),
            unit => unit,
        }
    }
}

/// One registered model.
pub struct ModelInfo {
    /// Registry name (timm's name where timm has the model).
    pub name: &'static str,
    /// Architecture family.
    pub family: &'static str,
    /// What the model computes.
    pub task: Task,
    /// The paper that introduced it.
    pub paper: &'static str,
    /// Number of parameters of the default configuration (PyTorch counting).
    pub params: usize,
    /// Channels of the input image.
    pub in_channels: usize,
    /// How images are prepared for it.
    pub data: DataConfig,
    /// Where the official weights are published (or why there are none).
    pub weights: &'static str,
    /// Builds the configuration (a function, so the table is a `static`; generated entries,
    /// such as the U-Nets on every encoder, carry a leaked closure).
    pub config: &'static (dyn Fn() -> ModelConfig + Send + Sync),
}

impl fmt::Debug for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelInfo")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("task", &self.task)
            .field("params", &self.params)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// A registry entry in a family file: `variant!(name, family, task, paper, params, data,
/// weights, config)`, with `config` any family configuration.
#[macro_export]
macro_rules! variant {
    ($name:literal, $family:literal, $task:expr, $paper:expr, $params:literal, $data:expr, $weights:expr, $config:expr $(,)?) => {
        $crate::registry::ModelInfo {
            name: $name,
            family: $family,
            task: $task,
            paper: $paper,
            params: $params,
            in_channels: 3,
            data: $data,
            weights: $weights,
            config: &|| $crate::model::ModelConfig::from($config),
        }
    };
}

impl ModelInfo {
    /// The configuration this entry builds.
    pub fn config(&self) -> ModelConfig {
        (self.config)()
    }

    /// Builds the model with random weights.
    pub fn build(&'static self, device: &Device) -> Model {
        Model::build(self, &ModelOptions::default(), device)
            .expect("registered configurations build")
    }

    /// Builds the model with timm's `create_model` options.
    pub fn build_with(
        &'static self,
        options: &ModelOptions,
        device: &Device,
    ) -> Result<Model, ModelError> {
        Model::build(self, options, device)
    }

    /// The key map from the official checkpoint's names to the module's paths.
    pub fn key_map(&self) -> KeyMap {
        self.config().key_map()
    }

    /// The official key and shape of every tensor of the published checkpoint (computed from
    /// the architecture; no weights are made).
    pub fn checkpoint_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let config = self.config();
        let device = Device::flex();
        gaze_weights::official_shapes(&config.init(&device), &config.key_map())
    }
}

/// ImageNet-1k classification.
pub const IMAGENET: Task = Task::Classification { num_classes: 1000 };

/// Where timm's checkpoints are published.
pub const TIMM_WEIGHTS: &str =
    "https://huggingface.co/timm (timm checkpoints, .safetensors or .pth, load as published)";

/// Every registered model, in family-list order.
pub fn models() -> &'static [&'static ModelInfo] {
    static ALL: OnceLock<Vec<&'static ModelInfo>> = OnceLock::new();
    ALL.get_or_init(|| family_variants().into_iter().flatten().collect())
}

/// The registered model whose published checkpoint has exactly `checkpoint`'s keys and shapes
/// (keys the `keys` map ignores aside), or the closest one, as a sentence for error messages.
pub fn which_model_fits(checkpoint: &[(String, Vec<usize>)], keys: &KeyMap) -> Option<String> {
    let wanted: Vec<&(String, Vec<usize>)> = checkpoint
        .iter()
        .filter(|(k, _)| !keys.is_ignored(k))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize, &'static str)> = None;
    for info in models() {
        let map = info.key_map();
        let shapes: std::collections::BTreeMap<String, Vec<usize>> =
            info.checkpoint_shapes().into_iter().collect();
        let relevant: Vec<_> = checkpoint
            .iter()
            .filter(|(k, _)| !map.is_ignored(k))
            .collect();
        let matching = relevant
            .iter()
            .filter(|(k, s)| shapes.get(k) == Some(s))
            .count();
        if matching == relevant.len() && matching == shapes.len() {
            return Some(format!(
                "this looks like a `{}` checkpoint: {matching}/{} keys match",
                info.name,
                shapes.len()
            ));
        }
        let total = relevant.len().max(shapes.len());
        if best.is_none_or(|(m, t, _)| matching * t > m * total) {
            best = Some((matching, total, info.name));
        }
    }
    best.filter(|&(m, t, _)| 2 * m >= t && m > 0)
        .map(|(m, t, name)| format!("closest registered model: `{name}` ({m}/{t} keys match)"))
}

/// An unknown model name, with the closest registered names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel {
    /// The name asked for.
    pub name: String,
    /// Registered names close to it, best first.
    pub suggestions: Vec<&'static str>,
}

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown model '{}'", self.name)?;
        if !self.suggestions.is_empty() {
            write!(f, "; did you mean {}?", self.suggestions.join(", "))?;
        }
        write!(f, " (`gaze list` shows every model)")
    }
}

impl std::error::Error for UnknownModel {}

/// Looks a model up by name (case-insensitive, `-` accepted for `_`).
pub fn model_info(name: &str) -> Result<&'static ModelInfo, UnknownModel> {
    let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
    models()
        .iter()
        .copied()
        .find(|m| m.name == wanted)
        .ok_or_else(|| {
            let mut scored: Vec<(usize, &'static str)> = models()
                .iter()
                .map(|m| (edit_distance(&wanted, m.name), m.name))
                .filter(|&(d, n)| {
                    d <= (n.len() / 3).max(2) || (!wanted.is_empty() && n.contains(&wanted))
                })
                .collect();
            scored.sort();
            UnknownModel {
                name: name.to_string(),
                suggestions: scored.into_iter().take(5).map(|(_, n)| n).collect(),
            }
        })
}

/// Builds a registered model by name, with random weights (see [`Model::load_weights`]).
pub fn create_model(name: &str, device: &Device) -> Result<Model, UnknownModel> {
    Ok(model_info(name)?.build(device))
}

/// Builds a registered model by name with timm's `create_model` options: a fresh head
/// (`num_classes`), other input channels (`in_chans`), or a feature extractor
/// (`features_only`, `out_indices`).
///
/// ```
/// use burn::prelude::*;
/// use gaze_backbones::{create_model_with, ModelOptions};
///
/// let device = Device::flex();
/// let model = create_model_with("resnet18", &ModelOptions::new().num_classes(10).in_chans(1), &device)?;
/// let logits = model.forward(Tensor::<4>::zeros([2, 1, 64, 64], &device))?.into_logits().unwrap();
/// assert_eq!(logits.dims(), [2, 10]);
/// let features = create_model_with("resnet18", &ModelOptions::new().out_indices(&[1, 3]), &device)?;
/// let maps = features.forward(Tensor::<4>::zeros([1, 3, 64, 64], &device))?.into_features().unwrap();
/// assert_eq!(maps[1].dims(), [1, 256, 4, 4]);
/// # Ok::<(), gaze_backbones::ModelError>(())
/// ```
pub fn create_model_with(
    name: &str,
    options: &ModelOptions,
    device: &Device,
) -> Result<Model, ModelError> {
    model_info(name)?.build_with(options, device)
}

/// Levenshtein distance, for name suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let e = model_info("pan_x5").unwrap_err();
        assert_eq!(e.suggestions[..3], ["pan_x2", "pan_x3", "pan_x4"]);
        assert!(e.to_string().contains("did you mean pan_x2"));
        assert!(model_info("PAN-X4").is_ok());
        assert!(model_info("swin_base").unwrap_err().suggestions.is_empty());
        assert_eq!(
            model_info("resnet5").unwrap_err().suggestions[0],
            "resnet50"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn registered_param_counts_match_the_built_models() {
        let device = Device::flex();
        for info in models() {
            assert_eq!(
                info.build(&device).num_params(),
                info.params,
                "{}",
                info.name
            );
        }
    }
}
