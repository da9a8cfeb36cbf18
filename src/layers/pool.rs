//! Pooling layers over NCHW images, without padding: max pooling (PyTorch's `nn.MaxPool2d`; the gradient
//! goes to each window's first maximum), average pooling (`nn.AvgPool2d`) and global average pooling
//! (`nn.AdaptiveAvgPool2d(1)`: one mean per channel, an image of 1×1 that a flatten layer makes a row).
//! Windows default to a stride of their size, as PyTorch's.

use super::{options, whole, Layer, LayerKind, LayerStep, Shape};
use crate::ops::{AvgPool, AvgPoolBackward, Geometry, MaxPool, MaxPoolBackward, Op};

/// `maxpool:K[:stride=S]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Side of the square window, in pixels (`kernel_size`).
    pub kernel: usize,
    /// Pixels from one window to the next, both ways (`stride`; the window's size when the token has no
    /// `stride=`).
    pub stride: usize,
}

/// `avgpool:K[:stride=S]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Side of the square window, in pixels (`kernel_size`).
    pub kernel: usize,
    /// Pixels from one window to the next, both ways (`stride`; the window's size when the token has no
    /// `stride=`).
    pub stride: usize,
}

/// `gap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalAvgPool;

/// The geometry of `kernel_h × kernel_w` windows every `stride` over `rows` samples of `input`, or what was
/// expected instead.
fn geometry(
    input: Shape,
    rows: usize,
    (kernel_h, kernel_w): (usize, usize),
    stride: usize,
) -> Result<Geometry, String> {
    let Shape::Image {
        channels,
        height,
        width,
    } = input
    else {
        return Err(format!(
            "an image (channels x height x width; see --input-shape), got {input}"
        ));
    };
    if kernel_h > height || kernel_w > width {
        return Err(format!(
            "an image at least as large as its {kernel_h}x{kernel_w} window, got {input}"
        ));
    }
    Ok(Geometry {
        batch: rows,
        channels,
        height,
        width,
        kernel_h,
        kernel_w,
        stride,
        padding: 0,
    })
}

fn pooled(g: Geometry) -> Shape {
    Shape::Image {
        channels: g.channels,
        height: g.out_height(),
        width: g.out_width(),
    }
}

fn token(name: &str, kernel: usize, stride: usize) -> String {
    if stride == kernel {
        format!("{name}:{kernel}")
    } else {
        format!("{name}:{kernel}:stride={stride}")
    }
}

/// Max or average pooling's ops over `step` with the geometry `g`.
fn pool_ops(max: bool, g: Geometry, step: &LayerStep, ops: &mut Vec<Op>) {
    let (input, output) = (step.input, step.output);
    ops.push(if max {
        Op::MaxPool(MaxPool {
            input,
            output,
            geometry: g,
        })
    } else {
        Op::AvgPool(AvgPool {
            input,
            output,
            geometry: g,
        })
    });
}

fn pool_backward_ops(max: bool, g: Geometry, step: &LayerStep, ops: &mut Vec<Op>) {
    let Some(grad_input) = step.grad_input else {
        return;
    };
    ops.push(if max {
        Op::MaxPoolBackward(MaxPoolBackward {
            input: step.input,
            grad_output: step.grad_output,
            grad_input,
            geometry: g,
        })
    } else {
        Op::AvgPoolBackward(AvgPoolBackward {
            grad_output: step.grad_output,
            grad_input,
            geometry: g,
        })
    });
}

impl MaxPool2d {
    fn geometry(&self, input: Shape, rows: usize) -> Result<Geometry, String> {
        geometry(input, rows, (self.kernel, self.kernel), self.stride)
    }
}

impl AvgPool2d {
    fn geometry(&self, input: Shape, rows: usize) -> Result<Geometry, String> {
        geometry(input, rows, (self.kernel, self.kernel), self.stride)
    }
}

impl GlobalAvgPool {
    fn geometry(&self, input: Shape, rows: usize) -> Result<Geometry, String> {
        let (height, width) = match input {
            Shape::Image { height, width, .. } => (height, width),
            _ => (1, 1),
        };
        geometry(input, rows, (height, width), 1)
    }
}

impl LayerKind for MaxPool2d {
    fn token(&self) -> String {
        token("maxpool", self.kernel, self.stride)
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        self.geometry(input, 1).map(pooled)
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_ops(true, g, step, ops);
    }

    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_backward_ops(true, g, step, ops);
    }
}

impl LayerKind for AvgPool2d {
    fn token(&self) -> String {
        token("avgpool", self.kernel, self.stride)
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        self.geometry(input, 1).map(pooled)
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_ops(false, g, step, ops);
    }

    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_backward_ops(false, g, step, ops);
    }
}

impl LayerKind for GlobalAvgPool {
    fn token(&self) -> String {
        "gap".into()
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        self.geometry(input, 1).map(pooled)
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_ops(false, g, step, ops);
    }

    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let g = self.geometry(step.input_shape, step.rows).expect("checked");
        pool_backward_ops(false, g, step, ops);
    }
}

/// `K[:stride=S]` of a pooling token.
fn kernel_and_stride(name: &str, args: &[&str]) -> Result<(usize, usize), String> {
    let [kernel, rest @ ..] = args else {
        return Err(format!(
            "expected {name}:K[:stride=S] (for example {name}:2)"
        ));
    };
    let kernel = whole("K (window size)", kernel, 1)?;
    let mut stride = kernel;
    for (_, value) in options(rest, &["stride"])? {
        stride = whole("stride", value, 1)?;
    }
    Ok((kernel, stride))
}

/// `maxpool:K[:stride=S]`.
pub(super) fn parse_max(name: &str, args: &[&str]) -> Result<Layer, String> {
    let (kernel, stride) = kernel_and_stride(name, args)?;
    Ok(Layer::MaxPool2d(MaxPool2d { kernel, stride }))
}

/// `avgpool:K[:stride=S]`.
pub(super) fn parse_avg(name: &str, args: &[&str]) -> Result<Layer, String> {
    let (kernel, stride) = kernel_and_stride(name, args)?;
    Ok(Layer::AvgPool2d(AvgPool2d { kernel, stride }))
}

/// `gap`.
pub(super) fn parse_gap(_name: &str, args: &[&str]) -> Result<Layer, String> {
    match args {
        [] => Ok(Layer::GlobalAvgPool(GlobalAvgPool)),
        _ => Err("gap takes no parameters".into()),
    }
}
