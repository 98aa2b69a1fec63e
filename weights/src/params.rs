//! A module's parameters in visit order (struct field order, which is the order the forward
//! pass uses them in almost everywhere), with the kind of module that holds each one.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Gradients, Int, Tensor};

/// One parameter of a module.
#[derive(Debug, Clone)]
pub(crate) struct ParamEntry {
    /// Module path with PyTorch's leaf names (norms' `gamma`/`beta` → `weight`/`bias`).
    pub path: String,
    /// PyTorch's shape (Linear weights `[out, in]`).
    pub shape: Vec<usize>,
    /// The innermost struct holding it, e.g. `Conv2d`, `Linear`, `BatchNorm`.
    pub module: String,
    /// The values of an integer buffer (index tables); `None` for float parameters.
    pub int_values: Option<Vec<i64>>,
    /// Whether the visit's gradients hold one for this tensor (`false` without gradients).
    pub has_grad: bool,
}

struct ParamVisitor<'g> {
    path: Vec<String>,
    containers: Vec<String>,
    with_int: bool,
    grads: Option<&'g Gradients>,
    out: Vec<ParamEntry>,
}

impl ParamVisitor<'_> {
    fn innermost_struct(&self) -> String {
        self.containers
            .iter()
            .rev()
            .find_map(|c| c.strip_prefix("Struct:"))
            .unwrap_or("")
            .to_string()
    }
}

impl ModuleVisitor for ParamVisitor<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.containers.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut shape = param.lazy_shape().to_vec();
        let mut path = self.path.clone();
        let module = self.innermost_struct();
        let name = path.last().map(String::as_str);
        match (module.as_str(), name) {
            ("Linear", Some("weight")) if shape.len() == 2 => shape.reverse(),
            ("BatchNorm" | "LayerNorm" | "GroupNorm" | "RmsNorm", Some(n @ ("gamma" | "beta"))) => {
                let renamed = if n == "gamma" { "weight" } else { "bias" };
                *path.last_mut().unwrap() = renamed.to_string();
            }
            _ => {}
        }
        let has_grad = self
            .grads
            .is_some_and(|grads| param.val().grad(grads).is_some());
        self.out.push(ParamEntry {
            path: path.join("."),
            shape,
            module,
            int_values: None,
            has_grad,
        });
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        if !self.with_int {
            return;
        }
        let values = param
            .val()
            .to_data_as::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        self.out.push(ParamEntry {
            path: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
            module: self.innermost_struct(),
            int_values: Some(values),
            has_grad: false,
        });
    }
}

/// The float parameters of `module` in visit order, and with `with_int` also its integer
/// buffers with their values (which reads them: only for modules whose buffers are built).
pub(crate) fn visit_params<M: Module>(module: &M, with_int: bool) -> Vec<ParamEntry> {
    visit(module, with_int, None)
}

fn visit<M: Module>(module: &M, with_int: bool, grads: Option<&Gradients>) -> Vec<ParamEntry> {
    let mut visitor = ParamVisitor {
        path: Vec::new(),
        containers: Vec::new(),
        with_int,
        grads,
        out: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// The parameters (module paths with PyTorch's leaf names, visit order) of every layer of
/// `module` that got no gradient in `grads`, from a backward pass through its forward: layers
/// the forward never runs, as a residual unit's projection shortcut built but skipped where the
/// shapes already agree. A layer is a module with a `weight`; all its tensors count as unused
/// (a BatchNorm's running statistics never get gradients, so they follow its weight).
pub(crate) fn unused_layers<M: Module>(module: &M, grads: &Gradients) -> Vec<String> {
    let params = visit(module, false, Some(grads));
    if !params.iter().any(|p| p.has_grad) {
        // No gradient anywhere: `grads` is not from this module's forward.
        return Vec::new();
    }
    let layer_of = |p: &ParamEntry| {
        p.path
            .rsplit_once('.')
            .map_or(String::new(), |(m, _)| m.to_string())
    };
    let mut used_layers = std::collections::HashSet::new();
    let mut layers_with_weight = std::collections::HashSet::new();
    for p in &params {
        if p.has_grad {
            used_layers.insert(layer_of(p));
        }
        if p.path == "weight" || p.path.ends_with(".weight") {
            layers_with_weight.insert(layer_of(p));
        }
    }
    params
        .iter()
        .filter(|p| {
            let layer = layer_of(p);
            layers_with_weight.contains(&layer) && !used_layers.contains(&layer)
        })
        .map(|p| p.path.clone())
        .collect()
}

/// The epsilon of every BatchNorm of `module`, in visit order. Burn's visitor sees parameters
/// only; the module's Display, which lists the fields in the same order, is the one place the
/// epsilon shows.
pub(crate) fn batch_norm_epsilons<M: burn::module::ModuleDisplay>(module: &M) -> Vec<f64> {
    let text = burn::module::ModuleDisplay::format(module, Default::default());
    text.lines()
        .filter(|line| line.contains(": BatchNorm {"))
        .filter_map(|line| {
            let rest = &line[line.find("epsilon: ")? + "epsilon: ".len()..];
            let end = rest.find([',', ' ', '}']).unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}
