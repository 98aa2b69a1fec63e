//! U-Net on any registered classifier's feature pyramid: the encoder-decoder of
//! segmentation_models_pytorch (smp) `Unet` (`decoders/unet/decoder.py`), as its users know it,
//! registered as `unet_<encoder>` for every classifier family listed in [`EncoderConfig`].
//!
//! Encoder: the classifier's `forward_intermediates` at strides 2, 4, 8, 16, 32 (CNNs), or 4…32
//! (hierarchical transformers: smp's "transformer style", with an empty stride-2 level; a
//! plain ViT's four intermediate maps resampled to 4…32 by [`simple_pyramid`]), plus
//! the input itself, as smp's `TimmUniversalEncoder` returns them. Decoder: five blocks (channels
//! 256/128/64/32/16 by default), each nearest ×2 upsampling, concatenation with the skip of that
//! stride, optional attention, two 3×3 conv + BN + ReLU, optional attention; smp offers only
//! scSE there, gaze any block of [`AttentionKind`] by name. Head: a 3×3 convolution to the
//! classes.
//!
//! Any input size: the image is zero-padded evenly to a multiple of 32 (or of the encoder's own
//! multiple, HaloNet's 256) and to at least the encoder's smallest input (NAT's), and the
//! output cropped back (smp refuses sizes that are not multiples of 32).
//!
//! Keys are smp's with a timm encoder (`encoder.model.<timm key>`, `decoder.blocks.{i}.conv1.0`,
//! `segmentation_head.0`); smp's own ResNet encoders (`encoder.<key>`) load too. A
//! classification checkpoint of the encoder (timm keys, head included) loads into the encoder
//! alone ([`crate::Model::load_weights`] says so).

use std::sync::OnceLock;

use burn::prelude::*;
use burn::tensor::ops::PadMode;
use gaze_blocks::attention::{create_attn, Attention, AttentionKind};
use gaze_blocks::conv::Conv2d;
use gaze_blocks::layers::{
    conv_same, upsample_nearest, Activation, ConvNormAct, ConvNormActConfig,
};
use gaze_weights::KeyMap;

use crate::family::{segmentation_classes, Family, FamilyNet};
use crate::features::FeatureInfo;
use crate::model::{InputSize, ModelConfig};
use crate::registry::{DataConfig, ModelInfo, Task};

/// The encoder families: each variant is a registered family whose classifiers have a
/// pyramid at strides 2…32 (CNNs) or 4…32 (hierarchical transformers and the Residual
/// Attention Network), or a plain ViT resampled into one ([`simple_pyramid`]). Adding one is
/// one line here.
macro_rules! encoders {
    ($($variant:ident($config:ty, $net:ty)),* $(,)?) => {
        /// The encoder's configuration, one variant per supported classifier family.
        #[derive(Debug, Clone)]
        pub enum EncoderConfig {
            $(
                #[doc = concat!("A `", stringify!($config), "` classifier.")]
                $variant($config),
            )*
        }

        /// The encoder network (the classifier without its head).
        #[derive(Module, Debug)]
        pub enum EncoderNet {
            $(
                #[doc = concat!("A `", stringify!($net), "`.")]
                $variant($net),
            )*
        }

        impl EncoderConfig {
            fn init_classifier(&self, device: &Device) -> EncoderNet {
                match self {
                    $(EncoderConfig::$variant(c) => {
                        let mut c = c.clone();
                        Family::set_num_classes(&mut c, 0).expect("a classifier drops its head");
                        EncoderNet::$variant(Family::init(&c, device))
                    })*
                }
            }

            /// The encoder's pyramid (strides and channels; a plain ViT's as resampled by
            /// [`simple_pyramid`]).
            pub fn feature_info(&self) -> Vec<FeatureInfo> {
                let info = match self { $(EncoderConfig::$variant(c) => Family::feature_info(c),)* };
                match self {
                    EncoderConfig::Vit(_) => simple_pyramid_info(info),
                    _ => info,
                }
            }

            fn key_map(&self) -> KeyMap {
                match self { $(EncoderConfig::$variant(c) => Family::key_map(c),)* }
            }

            fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
                match self { $(EncoderConfig::$variant(c) => Family::gathered_tables(c, input),)* }
            }

            fn input_size(&self) -> InputSize {
                match self { $(EncoderConfig::$variant(c) => Family::input_size(c),)* }
            }

            fn in_chans(&self) -> usize {
                match self { $(EncoderConfig::$variant(c) => Family::in_chans(c),)* }
            }

            fn set_in_chans(&mut self, in_chans: usize) {
                match self { $(EncoderConfig::$variant(c) => Family::set_in_chans(c, in_chans),)* }
            }

            fn num_classes(&self) -> usize {
                match self {
                    $(EncoderConfig::$variant(c) => Family::num_classes(c).unwrap_or(0),)*
                }
            }

            /// The encoder of a registered classifier's configuration, if its family is one.
            pub fn from_model(config: ModelConfig) -> Option<Self> {
                match config {
                    $(ModelConfig::$variant(c) => Some(EncoderConfig::$variant(c)),)*
                    _ => None,
                }
            }
        }

        impl EncoderNet {
            fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
                let maps = match self {
                    $(EncoderNet::$variant(m) => FamilyNet::forward_intermediates(m, x),)*
                };
                match self {
                    EncoderNet::Vit(_) => simple_pyramid(maps),
                    _ => maps,
                }
            }
        }

        /// Every registered classifier of the encoder families, in list order.
        fn encoder_variants() -> Vec<&'static ModelInfo> {
            let mut all = Vec::new();
            $(all.extend(<$config as Family>::variants().iter());)*
            all
        }
    };
}

encoders! {
    ResNet(crate::resnet::ResNetConfig, crate::resnet::ResNet),
    ResidualAttention(
        crate::residual_attention_net::ResidualAttentionNetConfig,
        crate::residual_attention_net::ResidualAttentionNet
    ),
    Swin(crate::swin::SwinConfig, crate::swin::Swin),
    Nat(crate::nat::NatConfig, crate::nat::Nat),
    BiFormer(crate::biformer::BiFormerConfig, crate::biformer::BiFormer),
    HaloNet(crate::halonet::HaloNetConfig, crate::halonet::HaloNet),
    Vit(crate::vit::VitConfig, crate::vit::VisionTransformer),
}

/// A plain ViT's four intermediate maps, all at the patch stride `p` (16), resampled into a
/// pyramid at `p/4, p/2, p, 2p` without parameters: nearest ×4, nearest ×2, as is, 2×2 max
/// pooling (the layout of ViTDet's simple feature pyramid, Li et al., ECCV 2022, whose
/// learned deconvolutions are left out so that the encoder stays the classifier).
pub fn simple_pyramid(maps: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
    let n = maps.len();
    maps.into_iter()
        .enumerate()
        .map(|(i, m)| match n - 1 - i {
            3 => upsample_nearest(m, 4),
            2 => upsample_nearest(m, 2),
            1 => m,
            _ => gaze_blocks::layers::max_pool_2x2(m),
        })
        .collect()
}

/// The strides of [`simple_pyramid`]'s maps.
fn simple_pyramid_info(info: Vec<FeatureInfo>) -> Vec<FeatureInfo> {
    let n = info.len();
    info.into_iter()
        .enumerate()
        .map(|(i, f)| FeatureInfo {
            reduction: match n - 1 - i {
                3 => f.reduction / 4,
                2 => f.reduction / 2,
                1 => f.reduction,
                _ => f.reduction * 2,
            },
            ..f
        })
        .collect()
}

impl EncoderConfig {
    /// The classifier without its head and without a final norm the pyramid does not use
    /// (timm's `features_only` model prunes both).
    fn init(&self, device: &Device) -> EncoderNet {
        let mut encoder = self.clone();
        if let EncoderConfig::Swin(c) = &mut encoder {
            c.final_norm = false;
        }
        encoder.init_classifier(device)
    }

    /// The key map of the encoder under smp's names: timm's `features_only` model
    /// (`FeatureListNet`) flattens the top-level sequential containers of Swin (`layers.1` →
    /// `layers_1`) and ByobNet/HaloNet (`stem.conv1` → `stem_conv1`, `stages.0` → `stages_0`).
    fn smp_key_map(&self) -> KeyMap {
        let flatten: &[(&str, &str)] = match self {
            EncoderConfig::Swin(_) => &[("^layers_{i:d}", "^layers.{i}")],
            EncoderConfig::HaloNet(_) => {
                &[("^stem_{m}", "^stem.{m}"), ("^stages_{i:d}", "^stages.{i}")]
            }
            _ => &[],
        };
        KeyMap::new(flatten).then(self.key_map())
    }

    /// Whether the pyramid is one smp's U-Net decoder takes: strides 2, 4, 8, 16, 32, or
    /// 4, 8, 16, 32 (an empty stride-2 level).
    pub fn has_unet_pyramid(&self) -> bool {
        let strides: Vec<usize> = self.feature_info().iter().map(|f| f.reduction).collect();
        strides == [2, 4, 8, 16, 32] || strides == [4, 8, 16, 32]
    }

    /// The padded size of an `h × w` input: each side zero-padded to a multiple of 32 (or of
    /// the encoder's own multiple, HaloNet's 256) and to at least the encoder's smallest size
    /// (NAT's 193, rounded up to the multiple).
    pub fn padded_size(&self, h: usize, w: usize) -> [usize; 2] {
        let (multiple, [min_h, min_w]) = self.padding_rule();
        padded_size(h, w, multiple, min_h, min_w)
    }

    /// The multiple and the smallest size the input is padded to.
    fn padding_rule(&self) -> (usize, [usize; 2]) {
        match self.input_size() {
            InputSize::PaddedTo(m) => (m.max(32), [0, 0]),
            InputSize::AtLeast(min) => (32, min),
            _ => (32, [0, 0]),
        }
    }
}

fn padded_size(h: usize, w: usize, multiple: usize, min_h: usize, min_w: usize) -> [usize; 2] {
    [
        h.max(min_h).next_multiple_of(multiple),
        w.max(min_w).next_multiple_of(multiple),
    ]
}

/// Configuration of [`EncoderUNet`]; the defaults are smp's `Unet`.
#[derive(Debug, Clone)]
pub struct EncoderUNetConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// Output channels of the five decoder blocks (smp: 256, 128, 64, 32, 16).
    pub decoder_channels: Vec<usize>,
    /// Attention in every decoder block (smp: `None` or scSE).
    pub decoder_attention: Option<AttentionKind>,
    /// Output classes (1: a binary mask).
    pub num_classes: usize,
}

impl EncoderUNetConfig {
    /// smp's defaults on `encoder`.
    pub fn new(encoder: EncoderConfig) -> Self {
        EncoderUNetConfig {
            encoder,
            decoder_channels: vec![256, 128, 64, 32, 16],
            decoder_attention: None,
            num_classes: 1,
        }
    }

    /// Other decoder widths (five).
    pub fn with_decoder_channels(mut self, channels: Vec<usize>) -> Self {
        self.decoder_channels = channels;
        self
    }

    /// Attention in the decoder blocks.
    pub fn with_decoder_attention(mut self, kind: Option<AttentionKind>) -> Self {
        self.decoder_attention = kind;
        self
    }

    /// Output classes.
    pub fn with_num_classes(mut self, n: usize) -> Self {
        self.num_classes = n;
        self
    }

    /// Channels of the encoder levels as smp lists them: the input, then strides 2…32 (0 for
    /// the empty stride-2 level of a transformer-style encoder).
    pub fn encoder_channels(&self) -> Vec<usize> {
        let info = self.encoder.feature_info();
        let mut channels = vec![self.encoder.in_chans()];
        if info.first().is_some_and(|f| f.reduction == 4) {
            channels.push(0);
        }
        channels.extend(info.iter().map(|f| f.channels));
        channels
    }

    /// `(in, skip, out)` channels of each decoder block.
    pub fn block_channels(&self) -> Vec<(usize, usize, usize)> {
        let enc = self.encoder_channels();
        let rev: Vec<usize> = enc[1..].iter().rev().copied().collect();
        let mut ins = vec![rev[0]];
        ins.extend(&self.decoder_channels[..self.decoder_channels.len() - 1]);
        let mut skips: Vec<usize> = rev[1..].to_vec();
        skips.push(0);
        ins.into_iter()
            .zip(skips)
            .zip(&self.decoder_channels)
            .map(|((i, s), &o)| (i, s, o))
            .collect()
    }

    /// Builds the network with random weights.
    pub fn init(&self, device: &Device) -> EncoderUNet {
        let attn = |c: usize| self.decoder_attention.map(|k| create_attn(k, c, device));
        let blocks = self
            .block_channels()
            .into_iter()
            .map(|(cin, skip, cout)| DecoderBlock {
                // Every block has it (smp builds it for the last block too), but it is applied
                // only where a skip is concatenated.
                attention1: attn(cin + skip),
                conv1: conv_bn_relu(cin + skip, cout, device),
                conv2: conv_bn_relu(cout, cout, device),
                attention2: attn(cout),
            })
            .collect();
        EncoderUNet {
            encoder: self.encoder.init(device),
            decoder: UnetDecoder { blocks },
            segmentation_head: conv_same(
                *self.decoder_channels.last().expect("five decoder blocks"),
                self.num_classes,
                3,
                true,
                device,
            ),
            pad_multiple: self.encoder.padding_rule().0,
            min_height: self.encoder.padding_rule().1[0],
            min_width: self.encoder.padding_rule().1[1],
        }
    }

    /// Where a key of the encoder's classification checkpoint goes in this model: its module
    /// path under `encoder`, named as smp names it (`encoder.model.…`, with timm's
    /// `features_only` flattening).
    fn encoder_key_placement(&self) -> impl Fn(&str) -> String {
        let encoder = self.encoder.key_map();
        let model = EncoderUNetConfig::key_map(self);
        move |k| model.unmap(&format!("encoder.{}", encoder.map(k)))
    }

    /// smp's names.
    pub fn key_map(&self) -> KeyMap {
        let mut map = KeyMap::new(&[
            ("^encoder.model", "^encoder"),
            (
                "^decoder.blocks.{i:d}.conv1.0",
                "^decoder.blocks.{i}.conv1.conv",
            ),
            (
                "^decoder.blocks.{i:d}.conv1.1",
                "^decoder.blocks.{i}.conv1.bn",
            ),
            (
                "^decoder.blocks.{i:d}.conv2.0",
                "^decoder.blocks.{i}.conv2.conv",
            ),
            (
                "^decoder.blocks.{i:d}.conv2.1",
                "^decoder.blocks.{i}.conv2.bn",
            ),
            (
                "^decoder.blocks.{i:d}.attention1.attention",
                "^decoder.blocks.{i}.attention1",
            ),
            (
                "^decoder.blocks.{i:d}.attention2.attention",
                "^decoder.blocks.{i}.attention2",
            ),
            ("^segmentation_head.0", "^segmentation_head"),
        ])
        .then(self.encoder.smp_key_map().under("encoder"));
        if let Some(kind) = self.decoder_attention {
            map = map.then(kind.key_map().under("decoder"));
        }
        map
    }

    /// Parameters, counted without building the network.
    pub fn num_params(&self, encoder_params: usize) -> usize {
        let attn = |c: usize| match self.decoder_attention {
            None => 0,
            Some(AttentionKind::Scse) => {
                let h = (c / 16).max(1);
                c * h + h + h * c + c + c + 1
            }
            Some(_) => panic!("analytic count only for scSE"),
        };
        let n = self.decoder_channels.len();
        let decoder: usize = self
            .block_channels()
            .into_iter()
            .map(|(cin, skip, cout)| {
                attn(cin + skip)
                    + (cin + skip) * cout * 9
                    + 2 * cout
                    + cout * cout * 9
                    + 2 * cout
                    + attn(cout)
            })
            .sum();
        let last = self.decoder_channels[n - 1];
        encoder_params + decoder + last * self.num_classes * 9 + self.num_classes
    }
}

fn conv_bn_relu(cin: usize, cout: usize, device: &Device) -> ConvNormAct {
    ConvNormActConfig::new(cin, cout, 3)
        .with_act(Some(Activation::Relu))
        .init(device)
}

/// One decoder block (smp's `UnetDecoderBlock`).
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// Attention on the concatenation (`attention1`).
    pub attention1: Option<Attention>,
    /// 3×3 conv + BN + ReLU (`conv1.0`, `conv1.1`).
    pub conv1: ConvNormAct,
    /// 3×3 conv + BN + ReLU (`conv2.0`, `conv2.1`).
    pub conv2: ConvNormAct,
    /// Attention on the block's output (`attention2`).
    pub attention2: Option<Attention>,
}

/// smp's `UnetDecoder` (no centre block).
#[derive(Module, Debug)]
pub struct UnetDecoder {
    /// The blocks, coarsest first.
    pub blocks: Vec<DecoderBlock>,
}

/// A U-Net on a classifier's pyramid.
#[derive(Module, Debug)]
pub struct EncoderUNet {
    /// The classifier without its head.
    pub encoder: EncoderNet,
    /// The decoder.
    pub decoder: UnetDecoder,
    /// 3×3 convolution to the classes (`segmentation_head.0`).
    pub segmentation_head: Conv2d,
    /// Inputs are padded to a multiple of this (32, or the encoder's own).
    pub pad_multiple: usize,
    /// … and to at least this height (the encoder's smallest input) …
    pub min_height: usize,
    /// … and width.
    pub min_width: usize,
}

impl EncoderUNet {
    /// Zero padding `(top, bottom, left, right)`, split evenly, to the encoder's padded size
    /// ([`EncoderConfig::padded_size`]).
    fn padding(&self, h: usize, w: usize) -> (usize, usize, usize, usize) {
        let [ph, pw] = padded_size(h, w, self.pad_multiple, self.min_height, self.min_width);
        let (dh, dw) = (ph - h, pw - w);
        (dh / 2, dh - dh / 2, dw / 2, dw - dw / 2)
    }

    /// The decoder's last map at the input's size plus a one-pixel margin, `[N, 16, H + 2,
    /// W + 2]`: the margin holds what the 3×3 head sees around the image (the decoder's values
    /// where the input was padded, zeros beyond), so cropping after the head gives exactly the
    /// logits of the padded input.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let (top, bottom, left, right) = self.padding(h, w);
        let padded = x.pad((left, right, top, bottom), PadMode::Constant(0.0));
        let mut levels = self.encoder.forward_intermediates(padded);
        // Transformer-style pyramids (first level at stride 4) have an empty stride-2 skip.
        let first_is_stride4 = levels
            .first()
            .is_some_and(|f| f.dims()[2] * 4 == h + top + bottom);
        let mut d = levels.pop().expect("a pyramid");
        let mut skips: Vec<Option<Tensor<4>>> = levels.into_iter().rev().map(Some).collect();
        if first_is_stride4 {
            skips.push(None);
        }
        for (i, block) in self.decoder.blocks.iter().enumerate() {
            d = upsample_nearest(d, 2);
            let has_skip = i < skips.len();
            if let Some(Some(skip)) = skips.get(i) {
                d = Tensor::cat(vec![d, skip.clone()], 1);
            }
            if has_skip {
                if let Some(a) = &block.attention1 {
                    d = a.forward(d);
                }
            }
            d = block.conv2.forward(block.conv1.forward(d));
            if let Some(a) = &block.attention2 {
                d = a.forward(d);
            }
        }
        let [n, c, _, _] = d.dims();
        d.pad((1, 1, 1, 1), PadMode::Constant(0.0)).slice([
            0..n,
            0..c,
            top..top + h + 2,
            left..left + w + 2,
        ])
    }

    /// Per-pixel logits from [`EncoderUNet::forward_features`] (its margin cropped).
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<4> {
        let y = self.segmentation_head.forward(features);
        let [n, c, h, w] = y.dims();
        y.slice([0..n, 0..c, 1..h - 1, 1..w - 1])
    }

    /// Per-pixel logits `[N, classes, H, W]` for any `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_head(self.forward_features(x))
    }

    /// The encoder's pyramid on the zero-padded input (see [`even_padding`]).
    pub fn forward_intermediates(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let (top, bottom, left, right) = self.padding(h, w);
        self.encoder
            .forward_intermediates(x.pad((left, right, top, bottom), PadMode::Constant(0.0)))
    }
}

const PAPER: &str =
    "U-Net: Convolutional Networks for Biomedical Image Segmentation (Ronneberger et al., MICCAI 2015), segmentation_models_pytorch decoder";

/// `unet_<encoder>` for every classifier of the encoder families.
fn generated() -> &'static [ModelInfo] {
    static VARIANTS: OnceLock<Vec<ModelInfo>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        encoder_variants()
            .into_iter()
            .filter_map(|info| {
                let enc = EncoderConfig::from_model(info.config())?;
                if !enc.has_unet_pyramid() {
                    return None;
                }
                // The classifier's head: a Linear from the last level's channels.
                let features = enc.feature_info().last().map_or(0, |f| f.channels);
                let classes = enc.num_classes();
                let mut head = features * classes + classes;
                if let EncoderConfig::Swin(_) = enc {
                    head += 2 * features; // the final LayerNorm, pruned (see `init`)
                }
                let config = EncoderUNetConfig::new(enc);
                let params = config.num_params(info.params - head);
                let (mean, std) = info.data.mean_std();
                let name: &'static str = Box::leak(format!("unet_{}", info.name).into_boxed_str());
                let weights: &'static str = Box::leak(
                    format!(
                        "encoder: {} (a classification checkpoint of `{}` loads into the encoder)",
                        info.weights, info.name
                    )
                    .into_boxed_str(),
                );
                Some(ModelInfo {
                    name,
                    family: "encoder_unet",
                    task: Task::Segmentation { num_classes: 1 },
                    paper: PAPER,
                    params,
                    in_channels: 3,
                    data: DataConfig::Dense { mean, std },
                    weights,
                    config: Box::leak(Box::new(move || ModelConfig::from(config.clone()))),
                })
            })
            .collect()
    })
}

impl Family for EncoderUNetConfig {
    type Net = EncoderUNet;

    fn variants() -> &'static [ModelInfo] {
        generated()
    }

    fn init(&self, device: &Device) -> EncoderUNet {
        EncoderUNetConfig::init(self, device)
    }

    fn key_map(&self) -> KeyMap {
        EncoderUNetConfig::key_map(self)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.encoder.feature_info()
    }

    fn in_chans(&self) -> usize {
        self.encoder.in_chans()
    }

    fn set_in_chans(&mut self, in_chans: usize) {
        self.encoder.set_in_chans(in_chans);
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.num_classes)
    }

    fn set_num_classes(&mut self, num_classes: usize) -> Result<(), String> {
        self.num_classes = segmentation_classes(num_classes)?;
        Ok(())
    }

    fn encoder_checkpoint_keys(&self, keys: &[String]) -> Option<Vec<(String, String)>> {
        let place = self.encoder_key_placement();
        Some(keys.iter().map(|k| (k.clone(), place(k))).collect())
    }

    fn gathered_tables(&self, input: [usize; 2]) -> Vec<(String, Vec<i64>)> {
        // The encoder's lookups (NAT's rpb) under this model's keys; the encoder sees the
        // image as it comes (the registered sizes need no padding).
        let place = self.encoder_key_placement();
        self.encoder
            .gathered_tables(input)
            .into_iter()
            .map(|(k, index)| (place(&k), index))
            .collect()
    }

    fn set_decoder_attention(&mut self, kind: AttentionKind) -> Result<(), String> {
        self.decoder_attention = Some(kind);
        Ok(())
    }
}

crate::segmenter_net!(EncoderUNet);
