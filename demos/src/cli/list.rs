//! `gaze list [--markdown]`: the model registry as a table.

use gaze::backbones::models;

use super::CliResult;

/// Arguments of `gaze list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a markdown table (the README's model table is made from it).
    #[arg(long)]
    pub markdown: bool,
}

/// Renders the registry; `markdown` selects the README table form.
pub fn render(markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str(
            "| model | task | params | paper | official weights |\n|---|---|---:|---|---|\n",
        );
        for m in models() {
            let weights = if m.weights.starts_with("http") {
                format!("[link]({})", m.weights)
            } else {
                m.weights.to_string()
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                m.name,
                m.task,
                group_thousands(m.params),
                m.paper,
                weights
            ));
        }
    } else {
        let width = models()
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(4)
            .max(5);
        out.push_str(&format!(
            "{:<width$}  {:<22}  {:>10}  paper\n",
            "model", "task", "params"
        ));
        for m in models() {
            out.push_str(&format!(
                "{:<width$}  {:<22}  {:>10}  {}\n",
                m.name,
                m.task.to_string(),
                group_thousands(m.params),
                m.paper
            ));
        }
    }
    out
}

/// Runs `gaze list`.
pub fn run(args: &Args) -> CliResult {
    print!("{}", render(args.markdown));
    Ok(())
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::group_thousands(272419), "272,419");
        assert_eq!(super::group_thousands(999), "999");
        assert_eq!(super::group_thousands(1036000), "1,036,000");
    }
}
