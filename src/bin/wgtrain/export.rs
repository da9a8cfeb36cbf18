//! `wgtrain export`: a saved model as an ONNX file (see [`wgtrain::onnx`] for its inputs and outputs).

use clap::Args;
use std::path::PathBuf;
use wgtrain::Result;

#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    /// The model to export (safetensors, written by `train --out`)
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the ONNX model (opset 17; input `input`, outputs `probabilities` and `label`, or
    /// `prediction`)
    #[arg(long)]
    pub onnx: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    crate::checks::check_output("--onnx", &args.onnx, "onnx", &[("--model", &args.model)])?;
    wgtrain::onnx::export_file(&args.model, &args.onnx)?;
    say!("wrote {}", args.onnx.display())
}
