//! The mocker's LoRA flags.

/// LoRA adapters, as vLLM serves them with `--enable-lora`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct LoraArgs {
    /// Adapter slots on the simulated GPU (vLLM's `--max-loras`); 0 turns LoRA off. Any
    /// number of adapters may be loaded; a request for one that is not in a slot first swaps
    /// it in (least recently used out), which costs `--lora-load-ms`.
    #[arg(long = "max-loras", default_value_t = 0)]
    pub max_loras: usize,

    /// Time one adapter load or slot swap takes, milliseconds.
    #[arg(long = "lora-load-ms", default_value_t = 0)]
    pub lora_load_ms: u64,

    /// Adapters loaded at start, `NAME=PATH` (repeatable), as vLLM's `--lora-modules`.
    #[arg(long = "lora-modules", value_name = "NAME=PATH")]
    pub lora_modules: Vec<String>,
}

impl LoraArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.lora_load_ms > 3_600_000 {
            return Err("--lora-load-ms must be at most 3600000".into());
        }
        if !self.lora_modules.is_empty() && self.max_loras == 0 {
            return Err("--lora-modules needs --max-loras of at least 1".into());
        }
        for m in &self.lora_modules {
            match m.split_once('=') {
                Some((name, path)) if !name.is_empty() && !path.is_empty() => {}
                _ => return Err(format!("--lora-modules takes NAME=PATH, got {m:?}")),
            }
        }
        Ok(())
    }

    /// `(name, path)` of every `--lora-modules` entry (validated first).
    pub fn modules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lora_modules.iter().filter_map(|m| m.split_once('='))
    }
}
