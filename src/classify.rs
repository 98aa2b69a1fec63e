//! Image classification: class names, top-k predictions and top-1/top-5 evaluation, with the
//! model's own eval transform ([`crate::preprocess::Transform`]).
//!
//! ```no_run
//! use gaze::prelude::*;
//!
//! let device = Device::flex();
//! let model = gaze::create_model("vit_tiny_patch16_224", &device)?
//!     .load_weights("vit_tiny_patch16_224.safetensors")?;
//! let image = gaze::preprocess::open_rgb("cat.jpg")?;
//! for p in gaze::classify(&model, &image, 5)? {
//!     println!("{:>6.2}%  {}", 100.0 * p.probability, p.label);
//! }
//! # Ok::<(), gaze::Error>(())
//! ```

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::RgbImage;

use crate::backbones::{LabelSet, Model, Output};
use crate::data::LabeledImages;
use crate::preprocess::{open_rgb, Transform};
use crate::Error;

/// The ImageNet-1k class names in class-index order (timm's `ImageNetInfo` descriptions).
const IMAGENET1K: &str = include_str!("labels/imagenet1k.txt");

/// CIFAR-10 class names.
const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Class names by index.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// Names from a list.
    pub fn new(names: Vec<String>) -> Labels {
        Labels { names }
    }

    /// The names of a label set.
    pub fn of_set(set: LabelSet) -> Labels {
        let names = match set {
            LabelSet::Imagenet1k => IMAGENET1K.lines().map(str::to_string).collect(),
            LabelSet::Cifar10 => CIFAR10.iter().map(|s| s.to_string()).collect(),
        };
        Labels { names }
    }

    /// The names of the model's classes: its pretrained label set when the head has that many
    /// classes, otherwise `class 0`, `class 1`, ….
    pub fn of(model: &Model) -> Labels {
        let n = model.config().num_classes().unwrap_or(0);
        match model.info().data.image().map(|c| Labels::of_set(c.labels)) {
            Some(labels) if labels.len() == n => labels,
            _ => Labels::new((0..n).map(|i| format!("class {i}")).collect()),
        }
    }

    /// Names from a text file, one per line (a line `index<TAB>name` also works).
    pub fn from_file(path: &Path) -> Result<Labels, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::msg(format!("cannot read labels file '{}': {e}", path.display()))
        })?;
        let names = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.split_once('\t') {
                Some((i, name)) if i.trim().parse::<usize>().is_ok() => name.trim().to_string(),
                _ => l.trim().to_string(),
            })
            .collect();
        Ok(Labels { names })
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `i` (`class i` past the end).
    pub fn name(&self, i: usize) -> String {
        self.names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {i}"))
    }
}

/// One of the top-k classes of an image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// The `k` most probable classes of `image` (an RGB image as PIL's `convert("RGB")` makes it,
/// see [`crate::preprocess::open_rgb`]), with the model's eval transform and labels.
pub fn classify(model: &Model, image: &RgbImage, k: usize) -> Result<Vec<Prediction>, Error> {
    let classifier = Classifier::new(model)?;
    Ok(classifier
        .classify(std::slice::from_ref(image), k)?
        .pop()
        .expect("one image in, one out"))
}

/// A model with its transform, labels and device, for classifying many images.
pub struct Classifier<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its eval transform.
    pub transform: Transform,
    /// Its class names.
    pub labels: Labels,
    device: Device,
}

impl<'a> Classifier<'a> {
    /// The model's transform and labels, on the model's device.
    pub fn new(model: &'a Model) -> Result<Classifier<'a>, Error> {
        let transform = Transform::of(model)?;
        let device = model
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(Device::flex);
        Ok(Classifier {
            model,
            transform,
            labels: Labels::of(model),
            device,
        })
    }

    /// Replaces the transform (e.g. the one a model was trained with; see
    /// [`Transform::from_json_file`]).
    pub fn with_transform(mut self, transform: Transform) -> Self {
        self.transform = transform;
        self
    }

    /// Replaces the class names.
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Softmax probabilities `[N, classes]` of a batch of images.
    pub fn probabilities(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>, Error> {
        let x = self.transform.to_tensor(images, &self.device);
        let logits = match self.model.forward(x)? {
            Output::Logits(l) => l,
            other => {
                return Err(Error::msg(format!(
                    "'{}' does not output class logits (output of shape {:?})",
                    self.model.info().name,
                    other.dims()
                )))
            }
        };
        let [n, c] = logits.dims();
        let probs = softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 probabilities");
        Ok((0..n).map(|i| probs[i * c..(i + 1) * c].to_vec()).collect())
    }

    /// The top-`k` predictions of each image.
    pub fn classify(&self, images: &[RgbImage], k: usize) -> Result<Vec<Vec<Prediction>>, Error> {
        Ok(self
            .probabilities(images)?
            .iter()
            .map(|p| {
                top_k(p, k)
                    .into_iter()
                    .map(|class| Prediction {
                        class,
                        label: self.labels.name(class),
                        probability: p[class],
                    })
                    .collect()
            })
            .collect())
    }
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Whether `label` is the top class (first value) and among the top five (second), as counts.
pub fn top1_top5_hits(probabilities: &[f32], label: usize) -> (usize, usize) {
    let best = top_k(probabilities, 5);
    (
        usize::from(best.first() == Some(&label)),
        usize::from(best.contains(&label)),
    )
}

/// Top-1/top-5 accuracy of a model on a labelled image set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// Images skipped because they could not be read (with the reason).
    pub skipped: Vec<(String, String)>,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
    /// Images per second (reading, transform and model).
    pub images_per_second: f64,
    /// Seconds in total.
    pub seconds: f64,
}

/// Evaluates `classifier` on `data` in batches of `batch`; `on_batch(done, total)` reports
/// progress. An unreadable image is skipped and listed in the report.
pub fn evaluate(
    classifier: &Classifier,
    data: &LabeledImages,
    batch: usize,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<EvalReport, Error> {
    let start = Instant::now();
    let (mut top1, mut top5, mut seen) = (0usize, 0usize, 0usize);
    let mut skipped = Vec::new();
    let total = data.items.len();
    for (done, chunk) in data.items.chunks(batch.max(1)).enumerate() {
        let mut images = Vec::with_capacity(chunk.len());
        let mut labels = Vec::with_capacity(chunk.len());
        for (path, label) in chunk {
            match open_rgb(path) {
                Ok(img) => {
                    images.push(img);
                    labels.push(*label);
                }
                Err(e) => skipped.push((path.display().to_string(), e.to_string())),
            }
        }
        if !images.is_empty() {
            for (p, &label) in classifier.probabilities(&images)?.iter().zip(&labels) {
                let (hit1, hit5) = top1_top5_hits(p, label);
                top1 += hit1;
                top5 += hit5;
            }
            seen += images.len();
        }
        on_batch((done * batch.max(1) + chunk.len()).min(total), total);
    }
    if seen == 0 {
        return Err(Error::msg("no image of the data set could be read"));
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(EvalReport {
        images: seen,
        skipped,
        top1: 100.0 * top1 as f64 / seen as f64,
        top5: 100.0 * top5 as f64 / seen as f64,
        images_per_second: seen as f64 / seconds,
        seconds,
    })
}
