//! Flatten (PyTorch's `nn.Flatten`): an image's channels × height × width as one row, in NCHW order, so a
//! dense layer after it reads the features PyTorch's would. No data moves: it works in place.

use super::{Layer, LayerKind, LayerStep, Shape, MAX_WIDTH};
use crate::ops::Op;

/// `C×H×W → C·H·W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten;

impl LayerKind for Flatten {
    fn token(&self) -> String {
        "flatten".into()
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        if input.len() > MAX_WIDTH as u128 {
            return Err(format!(
                "at most {MAX_WIDTH} values per sample to flatten, got {input}"
            ));
        }
        Ok(Shape::Flat(input.size()))
    }

    fn in_place(&self) -> bool {
        true
    }

    fn forward(&self, _step: &LayerStep, _ops: &mut Vec<Op>) {}

    fn backward(&self, _step: &LayerStep, _ops: &mut Vec<Op>) {}
}

/// `flatten`.
pub(super) fn parse(_name: &str, args: &[&str]) -> Result<Layer, String> {
    match args {
        [] => Ok(Layer::Flatten(Flatten)),
        _ => Err("flatten takes no parameters".into()),
    }
}
