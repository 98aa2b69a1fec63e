//! Classification head: global average pooling and an optional linear classifier (timm's
//! `ClassifierHead` with `pool_type="avg"`). Backbones keep their `Linear` under the
//! reference's name (`fc`, `head`, `head.fc`) and call [`classify`].

use burn::prelude::*;
use gaze_blocks::linear::{Linear, LinearConfig};

/// Mean over the spatial axes: `[N, C, H, W] → [N, C]`.
pub fn global_avg_pool(features: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = features.dims();
    features.mean_dim(3).mean_dim(2).reshape([n, c])
}

/// Global average pool, then the classifier when there is one (the pooled features otherwise).
pub fn classify(features: Tensor<4>, fc: Option<&Linear>) -> Tensor<2> {
    let pooled = global_avg_pool(features);
    match fc {
        Some(fc) => fc.forward(pooled),
        None => pooled,
    }
}

/// timm's `ClassifierHead` module (average pool, then `fc`; key `head.fc.*`) for backbones
/// whose checkpoints nest the classifier under `head`.
#[derive(Module, Debug)]
pub struct ClassifierHead {
    /// Classifier (absent when `num_classes` is 0: the head returns the pooled features).
    pub fc: Option<Linear>,
}

impl ClassifierHead {
    /// A head from `num_features` pooled features to `num_classes` outputs (none when 0).
    pub fn new(num_features: usize, num_classes: usize, device: &Device) -> Self {
        ClassifierHead {
            fc: (num_classes > 0)
                .then(|| LinearConfig::new(num_features, num_classes).init(device)),
        }
    }

    /// `[N, C, H, W]` features → `[N, classes]` (or `[N, C]` without a classifier).
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        classify(features, self.fc.as_ref())
    }
}
