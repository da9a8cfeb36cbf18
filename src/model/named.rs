//! Parameters and gradients by their PyTorch names, for training loops and tools of one's own.

use super::Model;
use crate::checkpoint::{torch_gradients, torch_tensors, TorchTensor};
use crate::error::Result;

/// One tensor by its name in a checkpoint (`layers.0.weight`, `layers.1.running_mean`), in PyTorch's
/// shape and layout: what `torch.nn.Sequential`'s `named_parameters()` and buffers hold.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// `layers.{i}.{name}`, `i` counting every layer as `nn.Sequential` numbers its modules.
    pub name: String,
    /// PyTorch's shape (`[out, in]` for a linear layer's weight).
    pub shape: Vec<usize>,
    /// Row-major in `shape`.
    pub values: Vec<f32>,
}

impl From<TorchTensor> for NamedTensor {
    fn from(tensor: TorchTensor) -> Self {
        NamedTensor {
            name: tensor.name(),
            shape: tensor.spec.torch_shape,
            values: tensor.values,
        }
    }
}

impl Model {
    /// Every parameter and state tensor (running statistics) by name, in PyTorch's layout: a dense
    /// layer's `weight` is `[out, in]` here, where [`Model::parameters`] keeps the engine's `[in, out]`.
    pub fn named_parameters(&mut self) -> Result<Vec<NamedTensor>> {
        let params = self.parameters()?;
        let tensors = torch_tensors(&self.network, &params)?;
        Ok(tensors.into_iter().map(NamedTensor::from).collect())
    }

    /// The loss of this batch and the gradient of every trained parameter by name, in PyTorch's layout
    /// (what `param.grad` holds after `loss.backward()`); nothing is updated.
    pub fn named_gradients(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<(f32, Vec<NamedTensor>)> {
        let (loss, grads) = self.gradients(inputs, targets)?;
        let tensors = torch_gradients(&self.network, &grads)?;
        Ok((loss, tensors.into_iter().map(NamedTensor::from).collect()))
    }
}
