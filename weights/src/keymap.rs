//! Renaming official checkpoint keys to gaze module paths, and back.
//!
//! A rule pairs two dotted key fragments: the official name and ours, e.g.
//! `("SCPA_trunk", "scpa_trunk")` or `("^conv1.{i:d}", "^conv1.conv_{i}")`. A fragment matches
//! whole segments only (it starts at the key's start or after a `.`, and ends at the key's end
//! or before a `.`); `^` anchors it at the key's start and `$` at its end; `{name}` captures
//! one segment's text
//! (`[^.]+`) and `{name:d}` digits only. Because both sides are patterns, every rule runs both
//! ways: [`KeyMap::map`] reads a checkpoint, [`KeyMap::unmap`] names what gaze saves, so timm or
//! the official code loads it.

use regex::Regex;

/// Buffers that PyTorch saves but that carry no weights for inference.
const ALWAYS_IGNORED: &str = r"(^|\.)num_batches_tracked$";

/// One direction of a rule: a regex over keys and the replacement.
#[derive(Debug, Clone)]
struct Rewrite {
    pattern: Regex,
    replacement: String,
}

impl Rewrite {
    fn new(from: &str, to: &str) -> Self {
        let (anchored, from_body) = match from.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, from),
        };
        let (at_end, from_body) = match from_body.strip_suffix('$') {
            Some(rest) => (true, rest),
            None => (false, from_body),
        };
        let to_body = to.strip_prefix('^').unwrap_or(to);
        let to_body = to_body.strip_suffix('$').unwrap_or(to_body);
        let mut pattern = String::from(if anchored {
            "^(?P<gz_pre>)"
        } else {
            r"(?P<gz_pre>^|\.)"
        });
        pattern.push_str(&template_regex(from_body));
        pattern.push_str(if at_end {
            "(?P<gz_post>)$"
        } else {
            r"(?P<gz_post>\.|$)"
        });
        let replacement = format!("${{gz_pre}}{}${{gz_post}}", template_replacement(to_body));
        Rewrite {
            pattern: Regex::new(&pattern)
                .unwrap_or_else(|e| panic!("invalid key-map rule '{from}': {e}")),
            replacement,
        }
    }

    fn apply(&self, key: &str) -> String {
        self.pattern
            .replace_all(key, self.replacement.as_str())
            .into_owned()
    }
}

/// Splits a template into literal text and `{name}` / `{name:d}` captures.
fn template_parts(template: &str) -> Vec<(bool, String)> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or_else(|| panic!("unclosed '{{' in key-map rule '{template}'"));
        parts.push((false, rest[..open].to_string()));
        parts.push((true, rest[open + 1..close].to_string()));
        rest = &rest[close + 1..];
    }
    parts.push((false, rest.to_string()));
    parts
}

fn template_regex(template: &str) -> String {
    template_parts(template)
        .into_iter()
        .map(|(capture, text)| {
            if !capture {
                return regex::escape(&text);
            }
            match text.split_once(':') {
                Some((name, "d")) => format!(r"(?P<{name}>\d+)"),
                Some((_, kind)) => panic!("unknown capture kind ':{kind}' in key-map rule"),
                None => format!(r"(?P<{text}>[^.]+)"),
            }
        })
        .collect()
}

fn template_replacement(template: &str) -> String {
    template_parts(template)
        .into_iter()
        .map(|(capture, text)| {
            if capture {
                let name = text.split_once(':').map_or(text.as_str(), |(n, _)| n);
                format!("${{{name}}}")
            } else {
                text.replace('$', "$$")
            }
        })
        .collect()
}

/// Adapts a checkpoint tensor whose shape differs from the module's to the module's shape
/// (timm's `checkpoint_filter_fn`: e.g. resampling a position table to another grid).
pub type Transform =
    fn(burn::tensor::TensorData, &[usize]) -> Result<burn::tensor::TensorData, String>;

/// An ordered list of two-way renaming rules between a checkpoint's key names and module
/// paths, value transforms for tensors whose shape depends on the configuration, plus patterns
/// of checkpoint keys to ignore when loading (buffers gaze recomputes, such as BatchNorm's
/// `num_batches_tracked` or Swin's `relative_position_index`).
#[derive(Debug, Clone)]
pub struct KeyMap {
    forward: Vec<Rewrite>,
    backward: Vec<Rewrite>,
    ignore: Vec<Regex>,
    transforms: Vec<(Regex, Transform)>,
}

impl KeyMap {
    /// Builds a key map from `(official, ours)` fragment pairs (see the module docs).
    ///
    /// # Panics
    /// If a rule is malformed: key maps are constants written with the model, and every one is
    /// exercised by the model's loading tests.
    pub fn new<S: AsRef<str>>(rules: &[(S, S)]) -> Self {
        KeyMap {
            forward: rules
                .iter()
                .map(|(a, b)| Rewrite::new(a.as_ref(), b.as_ref()))
                .collect(),
            backward: rules
                .iter()
                .rev()
                .map(|(a, b)| Rewrite::new(b.as_ref(), a.as_ref()))
                .collect(),
            ignore: vec![Regex::new(ALWAYS_IGNORED).unwrap()],
            transforms: Vec::new(),
        }
    }

    /// The identity map (checkpoint keys already equal module paths).
    pub fn identity() -> Self {
        Self::new::<&str>(&[])
    }

    /// Other official namings of the same tensors (older releases, ports), read when loading
    /// and never written: [`KeyMap::unmap`] keeps the primary naming of [`KeyMap::new`].
    pub fn with_aliases<S: AsRef<str>>(mut self, rules: &[(S, S)]) -> Self {
        let aliases: Vec<Rewrite> = rules
            .iter()
            .map(|(a, b)| Rewrite::new(a.as_ref(), b.as_ref()))
            .collect();
        self.forward.splice(0..0, aliases);
        self
    }

    /// Also ignore checkpoint keys matching any of the regexes `patterns` when loading.
    pub fn ignoring(mut self, patterns: &[&str]) -> Self {
        self.ignore.extend(
            patterns
                .iter()
                .map(|p| Regex::new(p).expect("invalid ignore regex")),
        );
        self
    }

    /// This map's rules followed by `other`'s (and back in the reverse order), ignoring what
    /// either ignores.
    pub fn then(mut self, other: KeyMap) -> Self {
        self.forward.extend(other.forward);
        let mut backward = other.backward;
        backward.extend(self.backward);
        self.backward = backward;
        self.ignore.extend(other.ignore);
        self.transforms.extend(other.transforms);
        self
    }

    /// Adapts checkpoint tensors whose official key matches the regex `pattern` with
    /// `transform` when their shape differs from the module's.
    pub fn with_transform(mut self, pattern: &str, transform: Transform) -> Self {
        self.transforms.push((
            Regex::new(pattern).expect("invalid transform regex"),
            transform,
        ));
        self
    }

    /// This map applied under `prefix`: its rules anchored at the key's start (`^…`) are
    /// anchored after `prefix.` instead, as are anchored ignore and transform patterns, so a
    /// family's map serves a sub-module (`encoder.`) of another model. Unanchored rules
    /// match anywhere, as before.
    pub fn under(self, prefix: &str) -> KeyMap {
        let p = regex::escape(prefix);
        let shift = |re: &Regex| -> Regex {
            let s = re.as_str();
            let shifted = match s.strip_prefix("^(?P<gz_pre>)") {
                Some(rest) => format!("^(?P<gz_pre>{p}\\.){rest}"),
                None => match s.strip_prefix('^') {
                    Some(rest) => format!("^{p}\\.{rest}"),
                    None => return re.clone(),
                },
            };
            Regex::new(&shifted).expect("a shifted key-map regex is valid")
        };
        let rewrite = |r: &Rewrite| Rewrite {
            pattern: shift(&r.pattern),
            replacement: r.replacement.clone(),
        };
        KeyMap {
            forward: self.forward.iter().map(rewrite).collect(),
            backward: self.backward.iter().map(rewrite).collect(),
            ignore: self.ignore.iter().map(shift).collect(),
            transforms: self
                .transforms
                .iter()
                .map(|(r, t)| (shift(r), *t))
                .collect(),
        }
    }

    /// The transform for a checkpoint key, if any.
    pub fn transform_for(&self, key: &str) -> Option<Transform> {
        self.transforms
            .iter()
            .find(|(re, _)| re.is_match(key))
            .map(|(_, t)| *t)
    }

    /// Whether the checkpoint key is a buffer to skip when loading.
    pub fn is_ignored(&self, key: &str) -> bool {
        self.ignore.iter().any(|r| r.is_match(key))
    }

    /// The module path for a checkpoint key.
    pub fn map(&self, key: &str) -> String {
        self.forward
            .iter()
            .fold(key.to_string(), |k, rule| rule.apply(&k))
    }

    /// The official checkpoint key for a module path (the rules run backwards).
    pub fn unmap(&self, path: &str) -> String {
        self.backward
            .iter()
            .fold(path.to_string(), |k, rule| rule.apply(&k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_applies_under_a_prefix() {
        let m = KeyMap::new(&[
            ("^conv1.0", "^conv1.conv_a"),
            ("downsample.0", "downsample.conv"),
        ])
        .ignoring(&["^fc\\."])
        .under("encoder");
        assert_eq!(
            m.map("encoder.conv1.0.weight"),
            "encoder.conv1.conv_a.weight"
        );
        assert_eq!(
            m.map("conv1.0.weight"),
            "conv1.0.weight",
            "anchored rules need the prefix"
        );
        assert_eq!(
            m.map("encoder.layer1.0.downsample.0.weight"),
            "encoder.layer1.0.downsample.conv.weight"
        );
        assert_eq!(
            m.unmap("encoder.conv1.conv_a.weight"),
            "encoder.conv1.0.weight"
        );
        assert!(m.is_ignored("encoder.fc.weight") && !m.is_ignored("fc.weight"));
    }

    #[test]
    fn rules_apply_in_order_both_ways() {
        let m = KeyMap::new(&[
            ("^SCPA_trunk", "scpa_trunk"),
            ("^scpa_trunk.{i:d}.k1.0", "scpa_trunk.{i}.k1"),
        ]);
        assert_eq!(m.map("SCPA_trunk.3.k1.0.weight"), "scpa_trunk.3.k1.weight");
        assert_eq!(
            m.unmap("scpa_trunk.3.k1.weight"),
            "SCPA_trunk.3.k1.0.weight"
        );
        assert_eq!(m.map("conv_first.bias"), "conv_first.bias");
        assert!(m.is_ignored("bn1.num_batches_tracked"));
        assert!(!m.is_ignored("bn1.running_mean"));
        let m = m.ignoring(&[r"relative_position_index$"]);
        assert!(m.is_ignored("layers.0.attn.relative_position_index"));
    }

    #[test]
    fn fragments_match_whole_segments() {
        let m = KeyMap::new(&[("k1.0", "k1"), ("{a}_{b:d}", "{a}.{b}")]);
        assert_eq!(m.map("blocks.k1.0.weight"), "blocks.k1.weight");
        assert_eq!(m.map("blocks.xk1.0.weight"), "blocks.xk1.0.weight");
        assert_eq!(m.map("k1.01.weight"), "k1.01.weight");
        assert_eq!(m.map("module_2.w"), "module.2.w");
        assert_eq!(m.unmap("module.2.w"), "module_2.w");
        let m = KeyMap::new(&[("body.0.{p}$", "conv1.{p}$")]);
        assert_eq!(
            m.map("body.4.body.0.body.0.weight"),
            "body.4.body.0.conv1.weight"
        );
        assert_eq!(
            m.unmap("body.4.body.0.conv1.weight"),
            "body.4.body.0.body.0.weight"
        );
        let m = KeyMap::new(&[("Gate.spatial", "gate.spatial")]).with_aliases(&[("gw", "Gate")]);
        assert_eq!(m.map("gw.spatial.w"), "gate.spatial.w");
        assert_eq!(m.unmap("gate.spatial.w"), "Gate.spatial.w");
        let chained = KeyMap::new(&[("a", "b")]).then(KeyMap::new(&[("b.0", "c")]));
        assert_eq!(chained.map("a.0.w"), "c.w");
        assert_eq!(chained.unmap("c.w"), "a.0.w");
    }
}
