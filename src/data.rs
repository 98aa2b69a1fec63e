//! Labelled image collections on disk, as timm reads them: an ImageFolder tree (one sub-folder
//! per class, classes in natural sort order) or a flat folder with a labels file.

use std::path::{Path, PathBuf};

/// File extensions read as images (timm's `IMG_EXTENSIONS` plus TIFF and GIF).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm",
];

/// Errors of dataset discovery.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The folder could not be read.
    #[error("cannot read data folder '{path}': {source}")]
    Io {
        /// The folder or file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// No image was found.
    #[error(
        "'{0}' holds no images (expected class sub-folders of images, or images with --labels)"
    )]
    Empty(String),
    /// A class folder has no images.
    #[error("class folder '{0}' holds no images")]
    EmptyClass(String),
    /// The labels file is malformed.
    #[error("labels file '{path}', line {line}: {message}")]
    Labels {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A segmentation set on disk is not laid out as expected, or a mask does not fit its image.
    #[error("{0}")]
    Segmentation(String),
}

/// A labelled set of image files.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledImages {
    /// Class names, indexed by label (folder names, or the indices as text for a labels file).
    pub classes: Vec<String>,
    /// `(file, label)` in a deterministic order.
    pub items: Vec<(PathBuf, usize)>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether a path has an image extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// timm's `natural_key`: digit runs compare as numbers ("class2" < "class10").
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<Result<u128, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digits = false;
        for ch in s.chars() {
            if ch.is_ascii_digit() != digits && !cur.is_empty() {
                out.push(if digits {
                    Ok(cur.parse().unwrap_or(u128::MAX))
                } else {
                    Err(cur.to_lowercase())
                });
                cur.clear();
            }
            digits = ch.is_ascii_digit();
            cur.push(ch);
        }
        if !cur.is_empty() {
            out.push(if digits {
                Ok(cur.parse().unwrap_or(u128::MAX))
            } else {
                Err(cur.to_lowercase())
            });
        }
        out
    }
    // Numbers sort before text, as Python compares int and str keys of the same position.
    let key = |c: &Result<u128, String>| match c {
        Ok(n) => (0, *n, String::new()),
        Err(s) => (1, 0, s.clone()),
    };
    let (ka, kb) = (chunks(a), chunks(b));
    ka.iter()
        .map(key)
        .cmp(kb.iter().map(key))
        .then_with(|| a.cmp(b))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(entries)
}

fn images_under(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut found = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            found.extend(images_under(&entry)?);
        } else if is_image(&entry) {
            found.push(entry);
        }
    }
    Ok(found)
}

impl LabeledImages {
    /// An ImageFolder tree: each sub-folder of `root` is a class (natural sort order, as timm
    /// and torchvision number them); its images (searched recursively) have that label.
    pub fn image_folder(root: &Path) -> Result<LabeledImages, DataError> {
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for entry in sorted_entries(root)? {
            if !entry.is_dir() {
                continue;
            }
            let images = images_under(&entry)?;
            if images.is_empty() {
                return Err(DataError::EmptyClass(entry.display().to_string()));
            }
            let label = classes.len();
            classes.push(
                entry
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            items.extend(images.into_iter().map(|p| (p, label)));
        }
        if items.is_empty() {
            return Err(DataError::Empty(root.display().to_string()));
        }
        Ok(LabeledImages { classes, items })
    }

    /// A folder of images with a labels file: tab- or comma-separated lines `file<TAB>class`
    /// (further columns ignored; a first line whose second field is not a number is a header).
    /// `file` is relative to `root` (or to `root/images`).
    pub fn with_labels_file(root: &Path, labels: &Path) -> Result<LabeledImages, DataError> {
        let text = std::fs::read_to_string(labels).map_err(io_err(labels))?;
        let bad = |line: usize, message: String| DataError::Labels {
            path: labels.display().to_string(),
            line,
            message,
        };
        let mut items = Vec::new();
        let mut max_label = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(['\t', ',']).map(str::trim).collect();
            if fields.len() < 2 {
                return Err(bad(i + 1, "expected 'file<TAB>class index'".into()));
            }
            let Ok(label) = fields[1].parse::<usize>() else {
                if i == 0 {
                    continue; // header
                }
                return Err(bad(i + 1, format!("'{}' is not a class index", fields[1])));
            };
            let file = [root.join(fields[0]), root.join("images").join(fields[0])]
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    bad(
                        i + 1,
                        format!("no file '{}' under '{}'", fields[0], root.display()),
                    )
                })?;
            max_label = max_label.max(label);
            items.push((file, label));
        }
        if items.is_empty() {
            return Err(DataError::Empty(labels.display().to_string()));
        }
        Ok(LabeledImages {
            classes: (0..=max_label).map(|i| i.to_string()).collect(),
            items,
        })
    }

    /// [`Self::with_labels_file`] when `labels` is given, else [`Self::image_folder`].
    pub fn open(root: &Path, labels: Option<&Path>) -> Result<LabeledImages, DataError> {
        match labels {
            Some(l) => Self::with_labels_file(root, l),
            None => Self::image_folder(root),
        }
    }
}

/// Images of an IDX file pair (the MNIST / Fashion-MNIST format), gray, 8-bit.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `N · rows · cols` pixels.
    pub pixels: Vec<u8>,
    /// `N` labels.
    pub labels: Vec<u8>,
}

impl IdxImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as rows × cols bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Reads `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` from `dir`
    /// (`prefix` is `train` or `t10k`).
    pub fn open(dir: &Path, prefix: &str) -> Result<IdxImages, DataError> {
        let images = read_idx(dir, &format!("{prefix}-images-idx3-ubyte"), 3)?;
        let labels = read_idx(dir, &format!("{prefix}-labels-idx1-ubyte"), 1)?;
        let bad = |message: String| DataError::Labels {
            path: dir.join(prefix).display().to_string(),
            line: 0,
            message,
        };
        if images.0[0] != labels.0[0] {
            return Err(bad(format!(
                "{} images but {} labels",
                images.0[0], labels.0[0]
            )));
        }
        Ok(IdxImages {
            rows: images.0[1],
            cols: images.0[2],
            pixels: images.1,
            labels: labels.1,
        })
    }

    /// Whether `dir` holds an IDX training set (`train-images-idx3-ubyte[.gz]`).
    pub fn is_idx_dir(dir: &Path) -> bool {
        ["", ".gz"]
            .iter()
            .any(|ext| dir.join(format!("train-images-idx3-ubyte{ext}")).is_file())
    }
}

/// Reads an unsigned-byte IDX file (optionally gzipped) of `dims` dimensions.
fn read_idx(dir: &Path, stem: &str, dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    use std::io::Read;
    let plain = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    let (path, bytes) = if plain.is_file() {
        (
            plain.clone(),
            std::fs::read(&plain).map_err(io_err(&plain))?,
        )
    } else {
        let raw = std::fs::read(&gz).map_err(io_err(&gz))?;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io_err(&gz))?;
        (gz.clone(), out)
    };
    let bad = |message: &str| DataError::Labels {
        path: path.display().to_string(),
        line: 0,
        message: message.to_string(),
    };
    if bytes.len() < 4 + 4 * dims || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file"));
    }
    if bytes[2] != 0x08 || bytes[3] as usize != dims {
        return Err(bad(&format!(
            "expected unsigned bytes in {dims} dimensions"
        )));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|d| {
            u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count: usize = shape.iter().product();
    let data = &bytes[4 + 4 * dims..];
    if data.len() != count {
        return Err(bad(&format!(
            "holds {} bytes of data, its header says {count}",
            data.len()
        )));
    }
    Ok((shape, data.to_vec()))
}

/// One image of a segmentation set, with its ground-truth mask and field-of-view mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSample {
    /// The image.
    pub image: PathBuf,
    /// The ground truth (foreground where non-zero), if any.
    pub truth: Option<PathBuf>,
    /// The field of view (pixels that count where non-zero), if any.
    pub fov: Option<PathBuf>,
}

/// A sample's pixels: the RGB image (PIL's `convert("RGB")`), its ground truth and field of
/// view as 0/1 per pixel.
#[derive(Debug, Clone)]
pub struct SegPixels {
    /// The image.
    pub image: image::RgbImage,
    /// 1 for foreground, 0 for background, per pixel (row-major), if known.
    pub truth: Option<Vec<u8>>,
    /// 1 inside the field of view, per pixel; all ones without a FOV mask.
    pub fov: Vec<u8>,
}

/// Folders of ground-truth masks, in order of preference (DRIVE's `1st_manual` first).
pub const TRUTH_DIRS: &[&str] = &["1st_manual", "masks", "labels", "annotations"];
/// Folders of field-of-view masks (DRIVE's `mask`).
pub const FOV_DIRS: &[&str] = &["mask", "fov"];

/// A segmentation set in the DRIVE layout: `images/` with the photos, `1st_manual/` (or
/// `masks/`, `labels/`, `annotations/`) with the ground truth, optionally `mask/` (or `fov/`)
/// with the field of view. A mask belongs to an image when its file stem equals the image's,
/// or starts with the image's identifier (the stem up to its first `_`) followed by `_`:
/// `21_training.tif` ↔ `21_manual1.gif` ↔ `21_training_mask.gif`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationSet {
    /// The folder.
    pub root: PathBuf,
    /// The samples, in natural order of the image names.
    pub samples: Vec<SegSample>,
}

impl SegmentationSet {
    /// Finds the samples under `root`; with `need_truth` every image must have its ground
    /// truth (training, evaluation). A missing field of view is not an error (the whole image
    /// counts; [`SegmentationSet::missing_fov`] lists them for a warning).
    pub fn open(root: &Path, need_truth: bool) -> Result<SegmentationSet, DataError> {
        let layout = |what: String| DataError::Segmentation(what);
        let images_dir = root.join("images");
        if !images_dir.is_dir() {
            return Err(layout(format!(
                "'{}' has no images/ folder (expected the DRIVE layout: images/, 1st_manual/ or masks/, optional mask/ for the field of view)",
                root.display()
            )));
        }
        let truth_dir = TRUTH_DIRS.iter().map(|d| root.join(d)).find(|d| d.is_dir());
        if need_truth && truth_dir.is_none() {
            return Err(layout(format!(
                "'{}' has images but no ground-truth masks ({}/)",
                root.display(),
                TRUTH_DIRS.join("/, ")
            )));
        }
        let fov_dir = FOV_DIRS.iter().map(|d| root.join(d)).find(|d| d.is_dir());
        let list = |dir: &Option<PathBuf>| -> Result<Vec<PathBuf>, DataError> {
            match dir {
                Some(d) => Ok(sorted_entries(d)?
                    .into_iter()
                    .filter(|p| is_image(p))
                    .collect()),
                None => Ok(Vec::new()),
            }
        };
        let (truths, fovs) = (list(&truth_dir)?, list(&fov_dir)?);
        let mut samples = Vec::new();
        for image in sorted_entries(&images_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            let truth = matching(&image, &truths);
            if need_truth && truth.is_none() {
                return Err(layout(format!(
                    "no ground-truth mask for '{}' in '{}'",
                    image.display(),
                    truth_dir.as_deref().unwrap_or(root).display()
                )));
            }
            let fov = matching(&image, &fovs);
            samples.push(SegSample { image, truth, fov });
        }
        if samples.is_empty() {
            return Err(DataError::Empty(images_dir.display().to_string()));
        }
        Ok(SegmentationSet {
            root: root.to_path_buf(),
            samples,
        })
    }

    /// Images without a field-of-view mask.
    pub fn missing_fov(&self) -> Vec<&Path> {
        self.samples
            .iter()
            .filter(|s| s.fov.is_none())
            .map(|s| s.image.as_path())
            .collect()
    }
}

fn stem(p: &Path) -> &str {
    p.file_stem().and_then(|s| s.to_str()).unwrap_or("")
}

/// The mask of `candidates` that belongs to `image` (same stem, else `<id>_…`).
fn matching(image: &Path, candidates: &[PathBuf]) -> Option<PathBuf> {
    let s = stem(image);
    let id = s.split('_').next().unwrap_or(s);
    candidates
        .iter()
        .find(|c| stem(c) == s)
        .or_else(|| {
            candidates
                .iter()
                .find(|c| stem(c).strip_prefix(id).is_some_and(|r| r.starts_with('_')))
        })
        .cloned()
}

impl SegSample {
    /// Reads the image and its masks; a mask of another size than its image is an error.
    pub fn read(&self) -> Result<SegPixels, crate::Error> {
        let image = crate::preprocess::open_rgb(&self.image)?;
        let (w, h) = image.dimensions();
        let read_mask = |path: &Path| -> Result<Vec<u8>, crate::Error> {
            let mask = crate::io::decode_image(path)?.to_luma8();
            if mask.dimensions() != (w, h) {
                return Err(DataError::Segmentation(format!(
                    "mask '{}' is {}×{}, its image '{}' is {w}×{h}",
                    path.display(),
                    mask.width(),
                    mask.height(),
                    self.image.display()
                ))
                .into());
            }
            Ok(mask
                .into_raw()
                .into_iter()
                .map(|v| u8::from(v > 127))
                .collect())
        };
        let truth = self.truth.as_deref().map(read_mask).transpose()?;
        let fov = match &self.fov {
            Some(p) => read_mask(p)?,
            None => vec![1; (w * h) as usize],
        };
        Ok(SegPixels { image, truth, fov })
    }
}
