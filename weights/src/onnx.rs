//! Parameters from ONNX files as `torch.onnx.export` writes them.
//!
//! Exporters do not keep the state dict: both fold a BatchNorm into the convolution before
//! it (the TorchScript exporter under anonymous names such as `onnx::Conv_193`, the dynamo
//! exporter under the conv's own name plus `…weight_bias`), store the weight of a Linear
//! applied to a 3-D input transposed for a `MatMul` (`onnx::MatMul_1167`, `val_42`), gather
//! relative-position tables into the bias they add, merge equal tensors and move large tensors
//! to an external `<file>.data`. So the parameters are recovered from the **graph**:
//!
//! 1. every node with a constant weight becomes a *site* of a kind — conv (`Conv`), linear
//!    (`Gemm`, `MatMul` + bias `Add`), batch norm, layer norm, or a free tensor used by any other
//!    op — in the graph's (topological) order;
//! 2. the target module's parameters become *units* of the same kinds in visit order;
//! 3. sites bind to units by surviving names (the initializer's or the node's module scope),
//!    then each kind in order — the exporters keep the forward order within a kind — with
//!    every shape checked, then repeated (merged) tensors fill what is left;
//! 4. the exporters' transformations are undone: `MatMul` weights transposed back, a folded
//!    BatchNorm restored exactly as the identity that adds the folded bias (γ = 1, β = bias,
//!    μ = 0, σ² = 1 − ε, so √(σ² + ε) = 1 in f32), gathered tables scattered back through the
//!    module's own index buffer, batch-expanded tokens reduced to one row.
//!
//! The first place where the graph and the model disagree is the error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};
use std::rc::Rc;

use onnx_ir::{Message, ModelProto, NodeProto, TensorProto};

use crate::params::ParamEntry;

/// Largest tensor a file may declare (elements): larger is corrupt, not a vision model.
const MAX_ELEMENTS: usize = 1 << 32;

/// A float constant of the graph, in its ONNX layout.
#[derive(Debug, Clone)]
pub(crate) struct Const {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Const {
    fn numel(&self) -> usize {
        self.data.len()
    }

    fn transposed2(&self) -> Const {
        let [r, c] = [self.shape[0], self.shape[1]];
        let mut data = vec![0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Const {
            shape: vec![c, r],
            data,
        }
    }

    fn permuted(&self, perm: &[usize]) -> Option<Const> {
        let rank = self.shape.len();
        if perm.len() != rank || (0..rank).any(|d| !perm.contains(&d)) {
            return None;
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let strides = strides(&self.shape);
        let mut data = Vec::with_capacity(self.numel());
        let mut index = vec![0usize; rank];
        for _ in 0..self.numel() {
            let offset: usize = (0..rank).map(|k| index[k] * strides[perm[k]]).sum();
            data.push(self.data[offset]);
            increment(&mut index, &shape);
        }
        Some(Const { shape, data })
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

fn increment(index: &mut [usize], shape: &[usize]) {
    for k in (0..shape.len()).rev() {
        index[k] += 1;
        if index[k] < shape[k] {
            return;
        }
        index[k] = 0;
    }
}

/// Parses an ONNX model (bounded: protobuf lengths are checked against the bytes).
pub(crate) fn parse_model(path: &Path) -> Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| format!("not ONNX: {e}"))?;
    if model.graph.is_none() {
        return Err("the ONNX model has no graph".into());
    }
    Ok(model)
}

/// Reads a float tensor (`raw_data`, `float_data` or external data next to the model file);
/// `Ok(None)` for other element types.
pub(crate) fn read_tensor(tensor: &TensorProto, dir: &Path) -> Result<Option<Const>, String> {
    const FLOAT: i32 = 1;
    if tensor.data_type != FLOAT {
        return Ok(None);
    }
    let mut shape = Vec::with_capacity(tensor.dims.len());
    let mut count = 1usize;
    for &d in &tensor.dims {
        let d = usize::try_from(d)
            .map_err(|_| format!("tensor '{}' has a negative dimension", tensor.name))?;
        count = count
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| format!("tensor '{}' declares too many elements", tensor.name))?;
        shape.push(d);
    }
    const EXTERNAL: i32 = 1;
    let bytes: Vec<u8> = if tensor.data_location.value() == EXTERNAL {
        read_external(tensor, dir, count)?
    } else if !tensor.raw_data.is_empty() || tensor.float_data.is_empty() && count == 0 {
        tensor.raw_data.to_vec()
    } else {
        if tensor.float_data.len() != count {
            return Err(format!(
                "tensor '{}' has {} values for shape {shape:?}",
                tensor.name,
                tensor.float_data.len()
            ));
        }
        return Ok(Some(Const {
            shape,
            data: tensor.float_data.clone(),
        }));
    };
    if bytes.len() != count * 4 {
        return Err(format!(
            "tensor '{}' has {} bytes for shape {shape:?}",
            tensor.name,
            bytes.len()
        ));
    }
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(Const { shape, data }))
}

/// A tensor stored in a file beside the model (`location`, `offset`, `length`), which must stay
/// inside the model's folder.
fn read_external(tensor: &TensorProto, dir: &Path, count: usize) -> Result<Vec<u8>, String> {
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location")
        .ok_or_else(|| format!("tensor '{}' is external without a location", tensor.name))?;
    let relative = Path::new(location);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "tensor '{}' points outside the model's folder ('{location}')",
            tensor.name
        ));
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("tensor '{}' has a bad {key} '{v}'", tensor.name))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(count as u64 * 4);
    if length != count as u64 * 4 {
        return Err(format!(
            "tensor '{}' has {length} external bytes for {count} values",
            tensor.name
        ));
    }
    let path = dir.join(relative);
    let mut file = std::fs::File::open(&path)
        .map_err(|e| format!("external data '{}': {e}", path.display()))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "tensor '{}' lies beyond the end of '{}'",
            tensor.name,
            path.display()
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; length as usize];
    file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// The float initializers by name (the plain reading, for files that kept the state dict's
/// names).
pub(crate) fn initializers(path: &Path) -> Result<Vec<(String, Const)>, String> {
    let model = parse_model(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for init in &model.graph.initializer {
        if let Some(c) = read_tensor(init, dir)? {
            out.push((init.name.clone(), c));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Sites: where the graph uses constant weights.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Conv,
    Linear,
    BatchNorm,
    LayerNorm,
    Free,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Conv => "conv",
            Kind::Linear => "linear",
            Kind::BatchNorm => "batch norm",
            Kind::LayerNorm => "layer norm",
            Kind::Free => "tensor",
        }
    }
}

#[derive(Debug)]
struct Site {
    node: usize,
    op: String,
    node_name: String,
    kind: Kind,
    /// (role, value): weight/bias/running_mean/running_var, or `value` for free tensors, in
    /// PyTorch's layout (linear weights already `[out, in]`).
    tensors: Vec<(&'static str, Rc<Const>)>,
    names: Vec<String>,
    /// A BatchNormalization node reads this conv's output (so its bias is the conv's own).
    bn_follows: bool,
    eps: f64,
    scope: String,
    fresh: bool,
    /// A `MatMul` with a constant rank-2 operand: a linear layer, or a free tensor (e.g. a
    /// relative-position table multiplied in) when no linear fits.
    matmul: bool,
    /// A one-element initializer (a learned scalar such as HAN's `gamma`, or any constant):
    /// bound by its name only, never by position.
    scalar: bool,
}

impl Site {
    fn tensor(&self, role: &str) -> Option<&Rc<Const>> {
        self.tensors
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t)
    }

    fn describe(&self) -> String {
        let tensors: Vec<String> = self
            .tensors
            .iter()
            .map(|(r, t)| format!("{r} {:?}", t.shape))
            .collect();
        let name = if self.node_name.is_empty() {
            String::new()
        } else {
            format!(" '{}'", self.node_name)
        };
        format!(
            "ONNX node {} {}{name} ({})",
            self.node,
            self.op,
            tensors.join(", ")
        )
    }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a onnx_ir::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}

/// The module path a node was exported from: TorchScript names nodes
/// `/layer1/layer1.0/conv1/Conv`; dynamo records `pkg.torch.onnx.name_scopes`.
fn scope_of(node: &NodeProto) -> String {
    if let Some(entry) = node
        .metadata_props
        .iter()
        .find(|p| p.key == "pkg.torch.onnx.name_scopes")
    {
        // A Python list literal: ['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d'].
        let parts: Vec<&str> = entry.value.split(['\'', '"']).skip(1).step_by(2).collect();
        return if parts.len() >= 2 {
            parts[parts.len() - 2].to_string()
        } else {
            String::new()
        };
    }
    if !node.name.starts_with('/') {
        return String::new();
    }
    let components: Vec<&str> = node.name.split('/').collect();
    let mut parts: Vec<String> = Vec::new();
    for c in &components[1..components.len() - 1] {
        match parts.last_mut() {
            Some(last) if c.starts_with(&format!("{last}.")) => *last = c.to_string(),
            _ => parts.push(c.to_string()),
        }
    }
    parts.join(".")
}

struct Graph {
    sites: Vec<Site>,
    /// Float constants with more than one element that no site took.
    node_count: usize,
}

fn collect_sites(model: &ModelProto, dir: &Path) -> Result<Graph, String> {
    let graph = &model.graph;
    let mut consts: HashMap<String, Rc<Const>> = HashMap::new();
    // The tensor a constant value came from (Transpose/Cast keep their input's origin).
    let mut origin: HashMap<String, String> = HashMap::new();
    for init in &graph.initializer {
        if let Some(c) = read_tensor(init, dir)? {
            consts.insert(init.name.clone(), Rc::new(c));
            origin.insert(init.name.clone(), init.name.clone());
        }
    }
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for x in &n.input {
            consumers.entry(x.as_str()).or_default().push(i);
        }
    }
    let mut produces_const = vec![false; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        let Some(out) = n.output.first() else {
            continue;
        };
        let folded: Option<(Rc<Const>, String)> = match n.op_type.as_str() {
            "Constant" => match attr(n, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => read_tensor(t, dir)?.map(|c| (Rc::new(c), out.clone())),
                None => None,
            },
            "Identity" => n
                .input
                .first()
                .and_then(|x| consts.get(x))
                .map(|c| (c.clone(), out.clone())),
            "Cast" => n.input.first().and_then(|x| {
                consts
                    .get(x)
                    .filter(|_| attr_i(n, "to", 1) == 1)
                    .map(|c| (c.clone(), origin[x].clone()))
            }),
            "Transpose" => match n.input.first().and_then(|x| consts.get(x).map(|c| (x, c))) {
                Some((x, c)) => {
                    let perm: Vec<usize> = match attr(n, "perm") {
                        Some(a) => a.ints.iter().map(|&p| p as usize).collect(),
                        None => (0..c.shape.len()).rev().collect(),
                    };
                    c.permuted(&perm).map(|t| (Rc::new(t), origin[x].clone()))
                }
                None => None,
            },
            _ => None,
        };
        if let Some((c, from)) = folded {
            consts.insert(out.clone(), c);
            origin.insert(out.clone(), from);
            produces_const[i] = true;
        }
    }
    let is_weight = |x: &str| consts.get(x).is_some_and(|c| c.numel() > 1);
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Initializers and their Identity aliases (the TorchScript exporter writes a parameter equal
    // to an earlier one as `Identity(earlier)` under its own name).
    let mut named: HashSet<&str> = initializers.clone();
    for n in &graph.node {
        if n.op_type == "Identity" && n.input.first().is_some_and(|x| named.contains(x.as_str())) {
            if let Some(out) = n.output.first() {
                named.insert(out.as_str());
            }
        }
    }
    let is_scalar_init =
        |x: &str| named.contains(x) && consts.get(x).is_some_and(|c| c.numel() == 1);
    let mut sites = Vec::new();
    let mut used_add: HashSet<usize> = HashSet::new();
    for (i, n) in graph.node.iter().enumerate() {
        let ins: Vec<&str> = n.input.iter().map(String::as_str).collect();
        let input = |k: usize| ins.get(k).copied().filter(|x| !x.is_empty());
        let op = n.op_type.as_str();
        let followed_by_bn = || {
            n.output.first().is_some_and(|o| {
                consumers.get(o.as_str()).is_some_and(|c| {
                    c.iter()
                        .any(|&j| graph.node[j].op_type == "BatchNormalization")
                })
            })
        };
        let site = |kind: Kind, tensors: Vec<(&'static str, Rc<Const>)>, names: Vec<String>| Site {
            node: i,
            op: op.to_string(),
            node_name: n.name.clone(),
            kind,
            tensors,
            names,
            bn_follows: false,
            eps: 1e-5,
            scope: scope_of(n),
            fresh: true,
            matmul: false,
            scalar: false,
        };
        // A layer's weight and its optional constant bias, with their names.
        let weight_and_bias = |w: &str, b: Option<&str>| {
            let mut tensors = vec![("weight", consts[w].clone())];
            let mut names = vec![w.to_string()];
            if let Some(b) = b.filter(|b| consts.contains_key(*b)) {
                tensors.push(("bias", consts[b].clone()));
                names.push(b.to_string());
            }
            (tensors, names)
        };
        match op {
            "Conv" | "ConvTranspose" if input(1).is_some_and(is_weight) => {
                let (tensors, names) = weight_and_bias(input(1).unwrap(), input(2));
                let mut s = site(Kind::Conv, tensors, names);
                s.bn_follows = followed_by_bn();
                sites.push(s);
            }
            "Gemm" if input(1).is_some_and(is_weight) => {
                let w = input(1).unwrap();
                if attr_f(n, "alpha", 1.0) != 1.0
                    || attr_f(n, "beta", 1.0) != 1.0
                    || attr_i(n, "transA", 0) != 0
                {
                    return Err(format!(
                        "ONNX node {i} Gemm '{}' scales or transposes its input; gaze reads Gemm only as a linear layer",
                        n.name
                    ));
                }
                let c = &consts[w];
                if c.shape.len() != 2 {
                    continue;
                }
                let weight = if attr_i(n, "transB", 0) != 0 {
                    c.clone()
                } else {
                    Rc::new(c.transposed2())
                };
                let mut tensors = vec![("weight", weight)];
                let mut names = vec![w.to_string()];
                if let Some(b) = input(2).filter(|b| consts.contains_key(*b)) {
                    let bias = &consts[b];
                    tensors.push((
                        "bias",
                        Rc::new(Const {
                            shape: vec![bias.numel()],
                            data: bias.data.clone(),
                        }),
                    ));
                    names.push(b.to_string());
                }
                let mut s = site(Kind::Linear, tensors, names);
                s.bn_follows = followed_by_bn();
                sites.push(s);
            }
            "MatMul"
                if input(1).is_some_and(|w| is_weight(w) && consts[w].shape.len() == 2)
                    && input(0).is_some_and(|x| !consts.contains_key(x)) =>
            {
                let w = input(1).unwrap();
                let weight = Rc::new(consts[w].transposed2());
                let out_features = weight.shape[0];
                let mut tensors = vec![("weight", weight)];
                let mut names = vec![w.to_string()];
                let next = n
                    .output
                    .first()
                    .and_then(|o| consumers.get(o.as_str()))
                    .cloned()
                    .unwrap_or_default();
                if let [j] = next[..] {
                    let add = &graph.node[j];
                    if add.op_type == "Add" {
                        let other = add.input.iter().find(|x| Some(*x) != n.output.first());
                        if let Some(b) = other.filter(|b| {
                            consts
                                .get(b.as_str())
                                .is_some_and(|c| c.numel() == out_features)
                        }) {
                            let bias = &consts[b.as_str()];
                            tensors.push((
                                "bias",
                                Rc::new(Const {
                                    shape: vec![out_features],
                                    data: bias.data.clone(),
                                }),
                            ));
                            names.push(b.clone());
                            used_add.insert(j);
                        }
                    }
                }
                let mut s = site(Kind::Linear, tensors, names);
                s.bn_follows = followed_by_bn();
                s.matmul = true;
                sites.push(s);
            }
            "BatchNormalization" => {
                if attr_i(n, "training_mode", 0) != 0 {
                    return Err(format!(
                        "ONNX node {i} BatchNormalization was exported in training mode: export the model after model.eval()"
                    ));
                }
                let roles = ["weight", "bias", "running_mean", "running_var"];
                let mut tensors = Vec::new();
                let mut names = Vec::new();
                for (k, role) in roles.iter().enumerate() {
                    match input(k + 1).and_then(|x| consts.get(x).map(|c| (x, c))) {
                        Some((x, c)) => {
                            tensors.push((*role, c.clone()));
                            names.push(x.to_string());
                        }
                        None => {
                            return Err(format!(
                                "ONNX node {i} BatchNormalization '{}' has a non-constant {role}",
                                n.name
                            ))
                        }
                    }
                }
                let mut s = site(Kind::BatchNorm, tensors, names);
                s.eps = attr_f(n, "epsilon", 1e-5) as f64;
                sites.push(s);
            }
            // A norm over several axes (PSA's `LayerNorm([c, 1, 1])`) is no Burn LayerNorm:
            // its module keeps plain tensors, so its weight and bias are free tensors (below).
            "LayerNormalization"
                if input(1).is_some_and(|x| consts.get(x).is_some_and(|c| c.shape.len() == 1)) =>
            {
                let (tensors, names) = weight_and_bias(input(1).unwrap(), input(2));
                sites.push(site(Kind::LayerNorm, tensors, names));
            }
            _ if !used_add.contains(&i) && !produces_const[i] => {
                for x in ins.iter().filter(|x| is_weight(x) || is_scalar_init(x)) {
                    let mut s = site(
                        Kind::Free,
                        vec![("value", consts[*x].clone())],
                        vec![x.to_string()],
                    );
                    s.scalar = !is_weight(x);
                    sites.push(s);
                }
            }
            _ => {}
        }
    }
    // A site is fresh when none of its tensors was used before: exporters merge equal
    // tensors, and a module called twice reads the same ones.
    let mut seen: HashSet<String> = HashSet::new();
    for s in &mut sites {
        let sources: Vec<String> = s
            .names
            .iter()
            .map(|x| origin.get(x).cloned().unwrap_or_else(|| x.clone()))
            .collect();
        s.fresh = !sources.iter().any(|x| seen.contains(x));
        seen.extend(sources);
    }
    Ok(Graph {
        sites,
        node_count: graph.node.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// Units: the target module's parameters grouped by the layer that holds them.

#[derive(Debug)]
pub(crate) struct Unit {
    kind: Kind,
    /// (role, official key, PyTorch shape).
    roles: Vec<(&'static str, String, Vec<usize>)>,
    /// Batch norms: the module's epsilon.
    eps: f64,
    /// Free tensors read through an index buffer of the same module: (index values, axes the
    /// index may address).
    gather: Option<Vec<i64>>,
}

impl Unit {
    fn role(&self, role: &str) -> Option<&(&'static str, String, Vec<usize>)> {
        self.roles.iter().find(|(r, _, _)| *r == role)
    }

    fn key(&self) -> &str {
        &self.roles[0].1
    }

    /// The official keys of the unit's tensors.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|(_, k, _)| k.as_str())
    }

    /// Every tensor of the unit as zeros.
    pub(crate) fn zeros(&self) -> State {
        self.roles
            .iter()
            .map(|(_, key, shape)| (key.clone(), zeros(shape)))
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {:?}",
            self.kind.name(),
            self.roles[0].1,
            self.roles[0].2
        )
    }
}

/// Groups `params` (visit order) into units; `official` renames a module path to the
/// checkpoint's key, `ignored` drops keys computed at init. `bn_eps` are the BatchNorms'
/// epsilons in visit order.
pub(crate) fn units(
    params: &[ParamEntry],
    official: &dyn Fn(&str) -> String,
    ignored: &dyn Fn(&str) -> bool,
    bn_eps: &[f64],
) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut bn_index = 0;
    let mut last_module: Option<(String, String)> = None;
    for (k, p) in params.iter().enumerate() {
        if p.int_values.is_some() {
            continue;
        }
        let key = official(&p.path);
        if ignored(&key) {
            continue;
        }
        let (module_path, leaf) = p.path.rsplit_once('.').unwrap_or(("", &p.path));
        let kind = match p.module.as_str() {
            "Conv1d" | "Conv2d" | "Conv3d" | "ConvTranspose1d" | "ConvTranspose2d" => Kind::Conv,
            "Linear" => Kind::Linear,
            "BatchNorm" => Kind::BatchNorm,
            "LayerNorm" => Kind::LayerNorm,
            _ => Kind::Free,
        };
        let role: &'static str = match (kind, leaf) {
            (Kind::Free, _) => "value",
            (_, "weight") => "weight",
            (_, "bias") => "bias",
            (_, "running_mean") => "running_mean",
            (_, "running_var") => "running_var",
            _ => "value",
        };
        let this = (module_path.to_string(), p.module.clone());
        let same_layer =
            kind != Kind::Free && role != "weight" && last_module.as_ref() == Some(&this);
        if same_layer {
            out.last_mut()
                .unwrap()
                .roles
                .push((role, key, p.shape.clone()));
            continue;
        }
        last_module = Some(this);
        let eps = if kind == Kind::BatchNorm {
            bn_index += 1;
            bn_eps.get(bn_index - 1).copied().unwrap_or(1e-5)
        } else {
            1e-5
        };
        // A table read through the module's own (single) integer index buffer.
        let gather = if kind == Kind::Free {
            let mut indices = params.iter().filter(|q| {
                q.int_values.is_some()
                    && q.path.rsplit_once('.').map(|(m, _)| m).unwrap_or("") == module_path
            });
            match (indices.next(), indices.next()) {
                (Some(q), None) => q.int_values.clone(),
                _ => None,
            }
        } else {
            None
        };
        let _ = k;
        out.push(Unit {
            kind,
            roles: vec![(role, key, p.shape.clone())],
            eps,
            gather,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Binding.

/// The recovered tensors by official key, in PyTorch layout.
pub(crate) type State = BTreeMap<String, Const>;

fn squeezed(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Inverts `table.take(index, axis)` observed as `observed` (any reshape of any permutation
/// of the gathered tensor). Every repeated index must agree exactly.
fn ungather(observed: &Const, table_shape: &[usize], index: &[i64]) -> Option<Const> {
    let table_numel: usize = table_shape.iter().product();
    for axis in 0..table_shape.len() {
        if index
            .iter()
            .any(|&j| j < 0 || j as usize >= table_shape[axis])
        {
            continue;
        }
        let mut gathered = table_shape.to_vec();
        gathered[axis] = index.len();
        if gathered.iter().product::<usize>() != observed.numel() {
            continue;
        }
        let rank = gathered.len();
        for perm in permutations(rank) {
            // `observed` holds the gathered tensor permuted by `perm`, flattened.
            let permuted: Vec<usize> = perm.iter().map(|&p| gathered[p]).collect();
            let pstrides = strides(&permuted);
            let mut stride_of = vec![0usize; rank];
            for (k, &p) in perm.iter().enumerate() {
                stride_of[p] = pstrides[k];
            }
            let tstrides = strides(table_shape);
            let mut table = vec![f32::NAN; table_numel];
            let mut pos = vec![0usize; rank];
            let mut ok = true;
            for _ in 0..observed.numel() {
                let src: usize = (0..rank).map(|k| pos[k] * stride_of[k]).sum();
                let dst: usize = (0..rank)
                    .map(|k| {
                        let i = if k == axis {
                            index[pos[k]] as usize
                        } else {
                            pos[k]
                        };
                        i * tstrides[k]
                    })
                    .sum();
                let v = observed.data[src];
                if table[dst].is_nan() {
                    table[dst] = v;
                } else if table[dst].to_bits() != v.to_bits() {
                    ok = false;
                    break;
                }
                increment(&mut pos, &gathered);
            }
            if ok {
                // Entries no index reads never reach the output: zero.
                for v in &mut table {
                    if v.is_nan() {
                        *v = 0.0;
                    }
                }
                return Some(Const {
                    shape: table_shape.to_vec(),
                    data: table,
                });
            }
        }
    }
    None
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for _ in 0..n {
        let mut next = Vec::new();
        for p in &out {
            for k in 0..n {
                if !p.contains(&k) {
                    let mut q = p.clone();
                    q.push(k);
                    next.push(q);
                }
            }
        }
        out = next;
    }
    out
}

/// The tensors `site` gives `units[ti]` (and a folded BatchNorm after it), or `None`.
fn fit(site: &Site, units: &[Unit], ti: usize, as_free: bool) -> Option<(State, bool)> {
    let unit = &units[ti];
    let kind = if as_free { Kind::Free } else { site.kind };
    if kind != unit.kind {
        return None;
    }
    let mut out = State::new();
    if kind == Kind::Free {
        let (_, key, shape) = &unit.roles[0];
        let value: Rc<Const> = if as_free {
            // A MatMul's operand as stored (the site transposed it for a linear layer).
            Rc::new(site.tensors[0].1.transposed2())
        } else {
            site.tensors[0].1.clone()
        };
        let numel: usize = shape.iter().product();
        let found = if value.numel() == numel && squeezed(&value.shape) == squeezed(shape) {
            Some(value.data.clone())
        } else if value.shape.len() == 2
            && shape.len() == 2
            && value.shape[0] == shape[1]
            && value.shape[1] == shape[0]
        {
            Some(value.transposed2().data)
        } else if !shape.is_empty()
            && shape[0] == 1
            && value.shape.len() == shape.len()
            && value.shape[1..] == shape[1..]
            && value.shape[0] > 1
            && value
                .data
                .chunks(numel)
                .all(|row| row == &value.data[..numel])
        {
            // A token expanded over the batch (dynamo folds `cls_token.expand(B, -1, -1)`).
            Some(value.data[..numel].to_vec())
        } else if let Some(order) = axis_order(&value.shape, shape) {
            // A table the exporter stored permuted: advanced indexing `rpb[:, i, j]` moves the
            // indexed axes to the front (NAT's [heads, 2k-1, 2k-1] is stored [2k-1, 2k-1,
            // heads]), and constant folding keeps the moved copy.
            value.permuted(&order).map(|c| c.data)
        } else {
            unit.gather.as_ref().and_then(|index| {
                // An index into the table's trailing axes flattened (NAT's `rpb[:, i, j]`).
                ungather(&value, shape, index)
                    .or_else(|| match shape.split_first() {
                        Some((&first, rest)) if rest.len() > 1 => {
                            ungather(&value, &[first, rest.iter().product()], index)
                        }
                        _ => None,
                    })
                    .map(|c| c.data)
            })
        }?;
        out.insert(
            key.clone(),
            Const {
                shape: shape.clone(),
                data: found,
            },
        );
        return Some((out, false));
    }
    for (role, value) in &site.tensors {
        if *role == "bias" && unit.role("bias").is_none() {
            continue;
        }
        let (_, key, shape) = unit.role(role)?;
        if value.shape != *shape {
            return None;
        }
        out.insert(key.clone(), (**value).clone());
    }
    let mut folded = false;
    if matches!(kind, Kind::Conv | Kind::Linear) {
        let channels = site.tensor("weight").unwrap().shape[0];
        if let Some(bias) = site.tensor("bias") {
            // A bias on a layer that has none is a folded BatchNorm's: the next unit in
            // parameter order (timm's deep stem: `conv1.6`, then the top-level `bn1`). A layer
            // with its own bias takes the next norm as folded only inside one module
            // (`conv1`/`bn1`, `Sequential(conv, bn)`): that norm may belong to another module
            // the layer's output only reaches later (BiFormer's last MLP `fc2` and the final
            // `norm`, which the graph keeps as its own node).
            let next = units.get(ti + 1).filter(|n| {
                n.kind == Kind::BatchNorm
                    && (unit.role("bias").is_none()
                        || parent_module(n.key()) == parent_module(unit.key()))
                    && n.role("weight")
                        .is_some_and(|(_, _, s)| *s == vec![channels])
            });
            match next {
                Some(bn) if !site.bn_follows => {
                    // BatchNorm folded into this layer: an identity norm that adds the bias.
                    folded = true;
                    if let Some((_, key, shape)) = unit.role("bias") {
                        out.insert(key.clone(), zeros(shape));
                    }
                    let c = vec![channels];
                    for (role, values) in [
                        ("weight", vec![1.0; channels]),
                        ("bias", bias.data.clone()),
                        ("running_mean", vec![0.0; channels]),
                        ("running_var", vec![(1.0 - bn.eps) as f32; channels]),
                    ] {
                        let (_, key, _) = bn.role(role)?;
                        out.insert(
                            key.clone(),
                            Const {
                                shape: c.clone(),
                                data: values,
                            },
                        );
                    }
                }
                _ if unit.role("bias").is_none() => return None,
                _ => {}
            }
        } else if let Some((_, key, shape)) = unit.role("bias") {
            out.insert(key.clone(), zeros(shape));
        }
    }
    if kind == Kind::BatchNorm && (site.eps - unit.eps).abs() > 0.0 {
        // The same normalisation under the model's epsilon.
        let (_, key, _) = unit.role("running_var")?;
        let var = out.get_mut(key)?;
        for v in &mut var.data {
            *v = (*v as f64 + site.eps - unit.eps) as f32;
        }
    }
    if kind == Kind::LayerNorm {
        if let Some((_, key, shape)) = unit.role("bias") {
            out.entry(key.clone()).or_insert_with(|| zeros(shape));
        }
    }
    Some((out, folded))
}

/// The axes of `observed` that, taken in order, give `wanted` (a numpy `transpose` order), when
/// `observed` is a true permutation of it of rank 3 or more. Axes of equal length keep their
/// relative order: exporters move axes (to the front for a gather) but do not swap equal ones.
fn axis_order(observed: &[usize], wanted: &[usize]) -> Option<Vec<usize>> {
    if observed.len() != wanted.len() || observed.len() < 3 || observed == wanted {
        return None;
    }
    let mut taken = vec![false; observed.len()];
    let mut order = Vec::with_capacity(wanted.len());
    for &len in wanted {
        let axis = (0..observed.len()).find(|&a| !taken[a] && observed[a] == len)?;
        taken[axis] = true;
        order.push(axis);
    }
    Some(order)
}

/// The module holding the layer of a parameter key: `a.b.conv1.weight` → `a.b`.
fn parent_module(key: &str) -> &str {
    let layer = key.rsplit_once('.').map_or("", |(m, _)| m);
    layer.rsplit_once('.').map_or("", |(m, _)| m)
}

fn zeros(shape: &[usize]) -> Const {
    Const {
        shape: shape.to_vec(),
        data: vec![0.0; shape.iter().product()],
    }
}

/// What the recovery found, for messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoverySummary {
    /// Sites bound through a surviving initializer name or node scope.
    pub by_name: usize,
    /// Sites bound by their position in the forward order.
    pub by_order: usize,
    /// Model parameters filled from a tensor the exporter merged with an equal one.
    pub shared: usize,
    /// BatchNorms restored from a folded conv / linear.
    pub folded_norms: usize,
    /// Constant tensors of the graph that are no parameter (masks, buffers).
    pub ignored_constants: usize,
    /// Layers the model builds but its forward never runs (so no export holds them), filled
    /// with zeros.
    pub never_run: usize,
}

/// Binds the graph's sites to the units and returns the state dict.
fn bind(
    graph: &Graph,
    units: &[Unit],
    model: &str,
    use_names: bool,
) -> Result<(State, RecoverySummary), String> {
    let sites = &graph.sites;
    let mut summary = RecoverySummary::default();
    let mut state = State::new();
    let mut bound: Vec<Option<usize>> = vec![None; units.len()];
    let mut site_used = vec![false; sites.len()];
    let by_key: HashMap<&str, usize> = units
        .iter()
        .enumerate()
        .flat_map(|(i, u)| u.roles.iter().map(move |(_, k, _)| (k.as_str(), i)))
        .collect();
    let apply = |si: usize,
                 ti: usize,
                 as_free: bool,
                 bound: &mut Vec<Option<usize>>,
                 state: &mut State,
                 summary: &mut RecoverySummary|
     -> bool {
        if bound[ti].is_some() {
            return false;
        }
        match fit(&sites[si], units, ti, as_free) {
            Some((tensors, folded)) => {
                state.extend(tensors);
                bound[ti] = Some(si);
                if folded {
                    bound[ti + 1] = Some(si);
                    summary.folded_norms += 1;
                }
                true
            }
            None => false,
        }
    };
    // Free units by module path, for scope hints.
    let mut free_by_module: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        if u.kind == Kind::Free {
            let module = u.key().rsplit_once('.').map(|(m, _)| m).unwrap_or("");
            free_by_module.entry(module).or_default().push(i);
        }
    }
    // 1. Surviving names: the initializer's (first use only: dedup reuses names), then the
    //    node's module scope.
    for (si, s) in sites.iter().enumerate() {
        if !use_names {
            break;
        }
        let mut tries: Vec<usize> = Vec::new();
        if s.fresh {
            tries.extend(by_key.get(s.names[0].as_str()));
        }
        if !s.scope.is_empty() && !s.scalar {
            if s.kind == Kind::Free {
                let module = free_by_module
                    .keys()
                    .filter(|m| {
                        s.scope == **m || s.scope.starts_with(&format!("{m}.")) || m.is_empty()
                    })
                    .max_by_key(|m| m.len());
                if let Some(m) = module {
                    tries.extend(&free_by_module[m]);
                }
            } else {
                tries.extend(by_key.get(format!("{}.weight", s.scope).as_str()));
            }
        }
        for ti in tries {
            if apply(si, ti, false, &mut bound, &mut state, &mut summary) {
                site_used[si] = true;
                summary.by_name += 1;
                break;
            }
        }
    }
    // 2. Forward order, one cursor per kind.
    for (si, s) in sites.iter().enumerate() {
        if site_used[si] || !s.fresh || s.scalar {
            continue;
        }
        // The first free unit the site fits (free sites include constants that are no
        // parameter, so no cursor: the search may skip).
        let first_free = |as_free: bool,
                          bound: &mut Vec<Option<usize>>,
                          state: &mut State,
                          summary: &mut RecoverySummary| {
            (0..units.len()).any(|ti| {
                units[ti].kind == Kind::Free && apply(si, ti, as_free, bound, state, summary)
            })
        };
        if s.kind == Kind::Free {
            if first_free(false, &mut bound, &mut state, &mut summary) {
                site_used[si] = true;
                summary.by_order += 1;
            }
            continue;
        }
        let next = (0..units.len()).find(|&ti| bound[ti].is_none() && units[ti].kind == s.kind);
        if let Some(ti) = next {
            if apply(si, ti, false, &mut bound, &mut state, &mut summary) {
                site_used[si] = true;
                summary.by_order += 1;
                continue;
            }
        }
        if s.matmul {
            // A constant multiplied in (a relative-position table), not a linear layer.
            if first_free(true, &mut bound, &mut state, &mut summary) {
                site_used[si] = true;
                summary.by_order += 1;
                continue;
            }
        }
        let expected = match next {
            Some(ti) => format!(
                "the model's next {} is {}",
                s.kind.name(),
                units[ti].describe()
            ),
            None => format!("the model has no {} left", s.kind.name()),
        };
        return Err(format!("{} does not fit {model}: {expected}", s.describe()));
    }
    // 3. Tensors the exporter merged with an equal one, and modules used twice.
    for ti in 0..units.len() {
        if bound[ti].is_some() {
            continue;
        }
        for si in 0..sites.len() {
            // A merged scalar only goes to a parameter of the module that reads it.
            let scalar_elsewhere = sites[si].scalar && {
                let module = units[ti]
                    .key()
                    .rsplit_once('.')
                    .map(|(m, _)| m)
                    .unwrap_or("");
                !(sites[si].scope == module || sites[si].scope.starts_with(&format!("{module}.")))
            };
            // A scalar read inside the unit's module gives its value even when it was bound
            // already: dynamo merges equal scalars (HAN's zero `gamma`s) into one initializer
            // named after one of them, read by both modules.
            let shareable = if sites[si].scalar {
                !scalar_elsewhere
            } else {
                !site_used[si] && !sites[si].fresh
            };
            if shareable && apply(si, ti, false, &mut bound, &mut state, &mut summary) {
                site_used[si] = true;
                summary.shared += 1;
                break;
            }
        }
    }
    if let Some(ti) = (0..units.len()).find(|&ti| bound[ti].is_none()) {
        let previous = (0..ti).filter_map(|t| bound[t]).max();
        let after = previous.map(|si| sites[si].node);
        let candidate = sites
            .iter()
            .find(|s| s.kind == units[ti].kind && after.is_none_or(|a| s.node > a));
        let next = match candidate {
            Some(s) => format!("; the next ONNX {} is {}", s.kind.name(), s.describe()),
            None => String::new(),
        };
        return Err(format!(
            "model parameter {} of {model} is not in the ONNX graph{next}",
            units[ti].describe()
        ));
    }
    summary.ignored_constants = sites
        .iter()
        .zip(&site_used)
        .filter(|(s, used)| !**used && s.fresh && !s.scalar && s.kind == Kind::Free)
        .count();
    let _ = graph.node_count;
    Ok((state, summary))
}

/// The height and width of the graph's first input `[N, C, H, W]`, when the export fixed them.
fn input_size(model: &ModelProto) -> Option<[usize; 2]> {
    let input = model.graph.input.first()?;
    let dims = &input.type_.tensor_type().shape.dim;
    let fixed = |k: usize| {
        dims.get(k)
            .filter(|d| d.has_dim_value() && d.dim_value() > 0)
            .map(|d| d.dim_value() as usize)
    };
    (dims.len() == 4).then_some(())?;
    Some([fixed(2)?, fixed(3)?])
}

/// Why a recovery failed: the file (unreadable, corrupt) or the graph (not the model's).
#[derive(Debug)]
pub(crate) enum RecoverError {
    File(String),
    Graph(String),
}

/// Recovers the state dict (official keys, PyTorch layout) of the module described by
/// `units` from the ONNX model at `path`.
pub(crate) fn recover(
    path: &Path,
    units: &mut [Unit],
    model: &str,
    use_names: bool,
    gathered: Option<crate::GatheredTables>,
) -> Result<(State, RecoverySummary), RecoverError> {
    let proto = parse_model(path).map_err(RecoverError::File)?;
    if let (Some(tables), Some(size)) = (gathered, input_size(&proto)) {
        for (key, index) in tables(size) {
            if let Some(unit) = units
                .iter_mut()
                .find(|u| u.kind == Kind::Free && u.gather.is_none() && u.key() == key)
            {
                unit.gather = Some(index);
            }
        }
    }
    let units = &*units;
    let dir = path.parent().unwrap_or(Path::new("."));
    let graph = collect_sites(&proto, dir).map_err(RecoverError::File)?;
    let weights = graph.sites.iter().filter(|s| s.kind != Kind::Free).count();
    let layers = units.iter().filter(|u| u.kind != Kind::Free).count();
    if weights == 0 && layers > 0 {
        return Err(RecoverError::Graph(format!(
            "the ONNX graph has no convolution, linear or norm with constant weights: not an export of {model}"
        )));
    }
    bind(&graph, units, model, use_names).map_err(|e| {
        RecoverError::Graph({
        let count = |k: Kind| graph.sites.iter().filter(|s| s.kind == k && s.fresh).count();
        let want = |k: Kind| units.iter().filter(|u| u.kind == k).count();
        format!(
            "{e} (the file has {} convs, {} linears, {} norms; {model} has {} convs, {} linears, {} norms{})",
            count(Kind::Conv),
            count(Kind::Linear),
            count(Kind::BatchNorm) + count(Kind::LayerNorm),
            want(Kind::Conv),
            want(Kind::Linear),
            want(Kind::BatchNorm) + want(Kind::LayerNorm),
            if count(Kind::BatchNorm) < want(Kind::BatchNorm) { ", some folded into convs" } else { "" }
        )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_order_keeps_equal_axes_in_order() {
        assert_eq!(axis_order(&[13, 13, 2], &[2, 13, 13]), Some(vec![2, 0, 1]));
        assert_eq!(axis_order(&[4, 2, 3], &[2, 3, 4]), Some(vec![1, 2, 0]));
        assert_eq!(axis_order(&[2, 3, 4], &[2, 3, 4]), None);
        assert_eq!(axis_order(&[13, 2], &[2, 13]), None);
        assert_eq!(axis_order(&[13, 12, 2], &[2, 13, 13]), None);
        // rpb [2, 13, 13] moved as rpb.permute(1, 2, 0) comes back unchanged.
        let rpb = Const {
            shape: vec![2, 3, 3],
            data: (0..18).map(|v| v as f32).collect(),
        };
        let moved = rpb.permuted(&[1, 2, 0]).unwrap();
        let back = moved
            .permuted(&axis_order(&moved.shape, &rpb.shape).unwrap())
            .unwrap();
        assert_eq!(back.data, rpb.data);
    }

    #[test]
    fn ungather_inverts_a_permuted_gather() {
        // table [3, 2] gathered on axis 0 by [2, 0, 2, 1] → [4, 2], stored transposed [2, 4].
        let table = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let index = [2i64, 0, 2, 1];
        let mut observed = Vec::new();
        for h in 0..2 {
            for &j in &index {
                observed.push(table[j as usize * 2 + h]);
            }
        }
        let observed = Const {
            shape: vec![1, 2, 4],
            data: observed,
        };
        let back = ungather(&observed, &[3, 2], &index).unwrap();
        assert_eq!(back.data, table);
        // Inconsistent repeats are refused.
        let mut bad = observed.clone();
        bad.data[0] += 1.0;
        assert!(ungather(&bad, &[3, 2], &index).is_none());
    }

    #[test]
    fn scopes_from_both_exporters() {
        let mut n = NodeProto::new();
        n.name = "/layer1/layer1.0/conv1/Conv".into();
        assert_eq!(scope_of(&n), "layer1.0.conv1");
        n.name = "/stages/stages.0/blocks/blocks.0/attn/qkv/linear/MatMul".into();
        assert_eq!(scope_of(&n), "stages.0.blocks.0.attn.qkv.linear");
        let mut n = NodeProto::new();
        n.name = "node_conv2d".into();
        n.metadata_props.resize_with(1, Default::default);
        n.metadata_props[0].key = "pkg.torch.onnx.name_scopes".into();
        n.metadata_props[0].value =
            "['', 'layer1', 'layer1.0', 'layer1.0.bn1', 'batch_norm']".into();
        assert_eq!(scope_of(&n), "layer1.0.bn1");
    }
}
