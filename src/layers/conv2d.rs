//! A 2-D convolution over NCHW images (PyTorch's `nn.Conv2d`, one group, no dilation): `out` channels,
//! each a `kernel × kernel` window over every input channel, every `stride` pixels, with `padding` zeros
//! around the image. It runs as a matrix product: `im2col` lays the patches out as rows, the tuned matmul
//! multiplies them by the weights (bias and a following activation in its epilogue), and a batched
//! transpose gives NCHW. Both scratch matrices are shared by every conv layer of the network. Where the
//! backend runs conv layers [`ConvAlgorithm::Direct`] (the CPU), the passes are the ops of `ops::conv2d`
//! instead, straight between NCHW tensors.

use super::{options, whole, Init, Layer, LayerKind, LayerStep, ParamSpec, Shape};
use crate::activation::Activation;
use crate::ops::{
    BiasGrad, ChannelSum, Col2im, Conv2dBackwardInput, Conv2dBackwardWeights, Conv2dForward,
    ConvAlgorithm, Geometry, Im2col, MatmulBiasAct, MatmulNt, MatmulTn, Op, TransposeBatched,
};

/// `conv:OUT:K[:stride=S][:pad=P]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Output channels, each one `kernel × kernel` filter over every input channel (`out_channels`).
    pub out_channels: usize,
    /// Side of the square window, in pixels (`kernel_size`).
    pub kernel: usize,
    /// Pixels from one window to the next, both ways (`stride`; 1 when the token has no `stride=`).
    pub stride: usize,
    /// Zero pixels added on every side of the image (`padding`; 0 when the token has no `pad=`).
    pub padding: usize,
}

impl Conv2d {
    /// The geometry over `rows` samples of `input` (an image, checked by `output_shape`).
    fn geometry(&self, rows: usize, input: Shape) -> Geometry {
        let Shape::Image {
            channels,
            height,
            width,
        } = input
        else {
            unreachable!("the network checked that a conv layer gets an image")
        };
        Geometry {
            batch: rows,
            channels,
            height,
            width,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl LayerKind for Conv2d {
    fn token(&self) -> String {
        let mut token = format!("conv:{}:{}", self.out_channels, self.kernel);
        if self.stride != 1 {
            token += &format!(":stride={}", self.stride);
        }
        if self.padding != 0 {
            token += &format!(":pad={}", self.padding);
        }
        token
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        let Shape::Image { height, width, .. } = input else {
            return Err(format!(
                "an image (channels x height x width; see --input-shape), got {input}"
            ));
        };
        let padded = |d: usize| d as u128 + 2 * self.padding as u128;
        if (self.kernel as u128) > padded(height).min(padded(width)) {
            return Err(format!(
                "an image at least as large as its {0}x{0} kernel with padding {1}, got {input}",
                self.kernel, self.padding
            ));
        }
        let g = self.geometry(1, input);
        Ok(Shape::Image {
            channels: self.out_channels,
            height: g.out_height(),
            width: g.out_width(),
        })
    }

    /// `weight` is PyTorch's `[out, in, k, k]`, stored transposed as `[in·k·k, out]` (so the patches times
    /// the weights give rows of output channels). He-uniform `±√(6 / fan_in)` before ReLU and leaky ReLU,
    /// Glorot-uniform `±√(6 / (fan_in + fan_out))` otherwise, with `fan_in = in·k·k` and
    /// `fan_out = out·k·k`; zero bias.
    fn params(&self, input: Shape, next: Option<&Layer>) -> Vec<ParamSpec> {
        let Shape::Image { channels, .. } = input else {
            return Vec::new();
        };
        let area = self.kernel * self.kernel;
        let (fan_in, fan_out) = (channels * area, self.out_channels * area);
        let limit = match next.and_then(Layer::activation) {
            Some(Activation::Relu | Activation::LeakyRelu(_)) => (6.0 / fan_in as f32).sqrt(),
            _ => (6.0 / (fan_in + fan_out) as f32).sqrt(),
        };
        vec![
            ParamSpec {
                name: "weight",
                torch_shape: vec![self.out_channels, channels, self.kernel, self.kernel],
                transposed: true,
                init: Init::Uniform(limit),
                nonnegative: false,
            },
            ParamSpec {
                name: "bias",
                torch_shape: vec![self.out_channels],
                transposed: false,
                init: Init::Zeros,
                nonnegative: false,
            },
        ]
    }

    fn scratch(&self, input: Shape, output: Shape, conv: ConvAlgorithm) -> [u128; 2] {
        if conv == ConvAlgorithm::Direct {
            return [0, 0];
        }
        let g = self.geometry(1, input);
        let positions = g.out_positions() as u128;
        [positions * g.patch() as u128, output.len()]
    }

    fn accepts_epilogue(&self) -> bool {
        true
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.rows, step.input_shape);
        if step.conv_algorithm == ConvAlgorithm::Direct {
            return ops.push(Op::Conv2dForward(Conv2dForward {
                input: step.input,
                weights: step.params[0],
                bias: step.params[1],
                output: step.output,
                geometry: g,
                out_channels: self.out_channels,
                activation: step.epilogue,
            }));
        }
        let [cols, product] = step.scratch;
        ops.push(Op::Im2col(Im2col {
            input: step.input,
            cols,
            geometry: g,
        }));
        ops.push(Op::MatmulBiasAct(MatmulBiasAct {
            input: cols,
            weights: step.params[0],
            bias: step.params[1],
            output: product,
            m: step.rows * g.out_positions(),
            k: g.patch(),
            n: self.out_channels,
            activation: step.epilogue,
            workgroup: None,
        }));
        ops.push(Op::TransposeBatched(TransposeBatched {
            input: product,
            output: step.output,
            batch: step.rows,
            rows: g.out_positions(),
            cols: self.out_channels,
        }));
    }

    /// The patches are laid out again unless no later layer reused the scratch, then the two products of a
    /// dense layer's backward pass, and `col2im` sums the patch gradients onto the input.
    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.rows, step.input_shape);
        if step.conv_algorithm == ConvAlgorithm::Direct {
            return self.backward_direct(step, g, ops);
        }
        let [cols, grad_product] = step.scratch;
        let positions = step.rows * g.out_positions();
        ops.push(Op::TransposeBatched(TransposeBatched {
            input: step.grad_output,
            output: grad_product,
            batch: step.rows,
            rows: self.out_channels,
            cols: g.out_positions(),
        }));
        if !step.scratch_kept {
            ops.push(Op::Im2col(Im2col {
                input: step.input,
                cols,
                geometry: g,
            }));
        }
        ops.push(Op::MatmulTn(MatmulTn {
            input: cols,
            grad_output: grad_product,
            grad_weights: step.param_grads[0],
            m: g.patch(),
            k: positions,
            n: self.out_channels,
            workgroup: None,
        }));
        ops.push(Op::BiasGrad(BiasGrad {
            grad_output: grad_product,
            grad_bias: step.param_grads[1],
            rows: positions,
            cols: self.out_channels,
        }));
        if let Some(grad_input) = step.grad_input {
            ops.push(Op::MatmulNt(MatmulNt {
                grad_output: grad_product,
                weights: step.params[0],
                grad_input: cols,
                m: positions,
                k: self.out_channels,
                n: g.patch(),
                workgroup: None,
            }));
            ops.push(Op::Col2im(Col2im {
                grad_cols: cols,
                grad_input,
                geometry: g,
            }));
        }
    }
}

impl Conv2d {
    /// The backward pass straight on NCHW: the weight, bias and input gradients as three ops.
    fn backward_direct(&self, step: &LayerStep, g: Geometry, ops: &mut Vec<Op>) {
        ops.push(Op::Conv2dBackwardWeights(Conv2dBackwardWeights {
            input: step.input,
            grad_output: step.grad_output,
            grad_weights: step.param_grads[0],
            geometry: g,
            out_channels: self.out_channels,
        }));
        ops.push(Op::ChannelSum(ChannelSum {
            grad_output: step.grad_output,
            grad_bias: step.param_grads[1],
            batch: step.rows,
            channels: self.out_channels,
            height: g.out_height(),
            width: g.out_width(),
        }));
        if let Some(grad_input) = step.grad_input {
            ops.push(Op::Conv2dBackwardInput(Conv2dBackwardInput {
                grad_output: step.grad_output,
                weights: step.params[0],
                grad_input,
                geometry: g,
                out_channels: self.out_channels,
            }));
        }
    }
}

/// `conv:OUT:K[:stride=S][:pad=P]`.
pub(super) fn parse(_name: &str, args: &[&str]) -> Result<Layer, String> {
    let [out, kernel, rest @ ..] = args else {
        return Err("expected conv:OUT:K[:stride=S][:pad=P] (for example conv:16:3:pad=1)".into());
    };
    let mut conv = Conv2d {
        out_channels: whole("OUT (output channels)", out, 1)?,
        kernel: whole("K (kernel size)", kernel, 1)?,
        stride: 1,
        padding: 0,
    };
    for (name, value) in options(rest, &["stride", "pad"])? {
        match name {
            "stride" => conv.stride = whole("stride", value, 1)?,
            _ => conv.padding = whole("pad", value, 0)?,
        }
    }
    Ok(Layer::Conv2d(conv))
}
