//! A backend that runs a model on the CPU reference and replays every op on the device under test from the
//! reference's inputs, comparing what each wrote. Each op starts from identical inputs, so an error is the
//! op's own and does not compound; the model follows the reference's values.

use super::{Check, Tolerance};
use crate::backend::{Backend, Counters, DeviceInfo, KernelId, Op, Region};
use crate::error::{Error, Result};
use crate::memory::MemoryLimits;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Per op and shape: the worst error and whether every run held.
pub type Found = Rc<RefCell<BTreeMap<(String, String), Check>>>;

/// The reference, the device under test, and what every op's comparison found so far.
pub struct Lockstep {
    reference: Box<dyn Backend>,
    device: Box<dyn Backend>,
    kernels: Vec<(Op, KernelId, KernelId)>,
    /// Shared with the caller, who gets the backend back only as a `dyn Backend`.
    pub found: Found,
}

impl Lockstep {
    /// Runs on `reference` and replays every op on `device`, with nothing found yet.
    pub fn new(reference: Box<dyn Backend>, device: Box<dyn Backend>) -> Lockstep {
        Lockstep {
            reference,
            device,
            kernels: Vec::new(),
            found: Found::default(),
        }
    }

    /// Runs one op on both from the reference's inputs and records the comparison of its outputs.
    fn replay(&mut self, index: usize) -> Result<()> {
        let (op, on_reference, on_device) = self.kernels[index];
        let operands = op.kernel().operands();
        for operand in &operands {
            let region = Region {
                len: operand.needed,
                ..operand.region
            };
            let values = self.reference.read(region)?;
            self.device.write(region.buffer, region.offset, &values)?;
        }
        self.reference.enqueue(on_reference)?;
        self.reference.submit()?;
        self.device.enqueue(on_device)?;
        self.device.submit()?;
        let tolerance = Tolerance::of(op.name());
        let mut outputs = Vec::new();
        for operand in operands.iter().filter(|o| o.written) {
            let region = Region {
                len: operand.needed,
                ..operand.region
            };
            outputs.push((self.reference.read(region)?, self.device.read(region)?));
        }
        let scale = outputs
            .iter()
            .flat_map(|(expected, _)| expected.iter())
            .filter(|v| v.is_finite())
            .fold(1.0f32, |m, v| m.max(v.abs()));
        let mut check = Check::new(tolerance, scale);
        for (expected, actual) in &outputs {
            for (&e, &a) in expected.iter().zip(actual) {
                check.compare(e, a, tolerance.allows(e, a, scale));
            }
        }
        let key = (op.name().to_string(), shape_of(&op));
        self.found
            .borrow_mut()
            .entry(key)
            .and_modify(|c| c.merge(&check))
            .or_insert(check);
        Ok(())
    }
}

/// An op's non-buffer fields from its `Debug` form (`m: 64, k: 784, n: 128, activation: Relu`): the shape
/// and settings it ran with, for the table.
pub fn shape_of(op: &Op) -> String {
    let debug = format!("{op:?}");
    // `Name(Name { field: value, region: Region { … }, … })`: keep the fields whose value is not a region.
    let inner = debug.split_once(" { ").map_or("", |(_, rest)| {
        let rest = rest.strip_suffix(')').unwrap_or(rest);
        rest.strip_suffix(" }").unwrap_or(rest)
    });
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in inner.chars() {
        match ch {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if ch == ',' && depth == 0 {
            fields.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    fields.push(current);
    fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty() && !f.contains("Region {") && !f.contains("BufferId("))
        .filter(|f| !f.ends_with(": None"))
        // A nested struct (`geometry: Geometry { batch: 3, … }`) shows its fields.
        .map(|f| match f.split_once(" { ") {
            Some((_, inner)) => inner.strip_suffix(" }").unwrap_or(inner),
            None => f,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Backend for Lockstep {
    fn info(&self) -> &DeviceInfo {
        self.device.info()
    }

    fn alloc(&mut self, label: &str, len: usize) -> Result<crate::backend::BufferId> {
        let on_reference = self.reference.alloc(label, len)?;
        let on_device = self.device.alloc(label, len)?;
        if on_reference != on_device {
            return Err(Error::Gpu(format!(
                "verify: the backends numbered buffer `{label}` differently ({on_reference:?}, {on_device:?})"
            )));
        }
        Ok(on_reference)
    }

    fn free(&mut self, buffer: crate::backend::BufferId) -> Result<()> {
        self.reference.free(buffer)?;
        self.device.free(buffer)
    }

    fn write(
        &mut self,
        buffer: crate::backend::BufferId,
        offset: usize,
        data: &[f32],
    ) -> Result<()> {
        self.reference.write(buffer, offset, data)?;
        self.device.write(buffer, offset, data)
    }

    fn read(&mut self, region: Region) -> Result<Vec<f32>> {
        self.reference.read(region)
    }

    fn prepare(&mut self, op: &Op) -> Result<KernelId> {
        let on_reference = self.reference.prepare(op)?;
        let on_device = self.device.prepare(op)?;
        self.kernels.push((*op, on_reference, on_device));
        Ok(KernelId(self.kernels.len() - 1))
    }

    fn enqueue(&mut self, kernel: KernelId) -> Result<()> {
        if kernel.0 >= self.kernels.len() {
            return Err(Error::Gpu(format!("verify: no kernel {kernel:?}")));
        }
        self.replay(kernel.0)
    }

    /// Every op ran when it was enqueued.
    fn submit(&mut self) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.device.counters()
    }

    fn profile(&mut self, _kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>> {
        Ok(None)
    }

    fn memory_limits(&self) -> MemoryLimits {
        self.device.memory_limits()
    }

    fn kernel_variant(&self, kernel: KernelId) -> Option<String> {
        let (_, _, on_device) = self.kernels.get(kernel.0)?;
        self.device.kernel_variant(*on_device)
    }

    fn conv_algorithm(&self) -> crate::ops::ConvAlgorithm {
        self.device.conv_algorithm()
    }

    fn max_binding_len(&self) -> usize {
        self.device.max_binding_len()
    }
}
