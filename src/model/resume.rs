//! What training holds besides the parameters, read out and restored, so that a run continues exactly
//! where it stopped: the optimizer's state tensors and the step count the device keeps.

use super::Model;
use crate::error::{Error, Result};
use crate::optim::hyper;
use crate::TrainConfig;

/// The optimizer's side of a training run (see [`Model::optimizer_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's name (`adam`, `momentum`, …): the state only fits the same rule.
    pub optimizer: String,
    /// Its state tensors (a velocity; Adam's two moments; RMSprop's averages), each over every
    /// parameter in the flat layout of [`crate::Network::param_slots`].
    pub buffers: Vec<Vec<f32>>,
    /// The device-owned hyperparameters: the step count and the bias corrections derived from it, as the
    /// device holds them, so the next step computes bit for bit what it would have.
    pub counters: Vec<f32>,
    /// Training steps taken ([`Model::steps`]).
    pub steps: u64,
}

impl Model {
    /// The optimizer's state after the steps taken so far; `None` before the first step.
    pub fn optimizer_state(&mut self) -> Result<Option<OptimizerState>> {
        let Some((optimizer, _)) = self.hyper_host else {
            return Ok(None);
        };
        let len = self.param_len;
        let buffers = (0..optimizer.state_buffers())
            .map(|i| self.backend.read(self.optimizer_state[i].region(len)))
            .collect::<Result<Vec<_>>>()?;
        let all = self.backend.read(self.hyper.region(hyper::LEN))?;
        Ok(Some(OptimizerState {
            optimizer: optimizer.name().to_string(),
            buffers,
            counters: all[hyper::HOST_LEN..].to_vec(),
            steps: self.steps,
        }))
    }

    /// Continues from `state`, taken from a model of this network trained with `config`'s optimizer:
    /// sets that optimizer, then writes its state tensors and counters back.
    pub fn restore_optimizer_state(
        &mut self,
        state: &OptimizerState,
        config: &TrainConfig,
    ) -> Result<()> {
        let optimizer = config.optimizer;
        let wrong = |message: String| Err(Error::value("optimizer state", message));
        if state.optimizer != optimizer.name() {
            return wrong(format!(
                "it belongs to {}, and this run's optimizer is {}",
                state.optimizer,
                optimizer.name()
            ));
        }
        if state.buffers.len() != optimizer.state_buffers()
            || state.buffers.iter().any(|b| b.len() != self.param_len)
            || state.counters.len() != hyper::LEN - hyper::HOST_LEN
        {
            return wrong(format!(
                "{} needs {} tensors of {} values and {} counters",
                optimizer.name(),
                optimizer.state_buffers(),
                self.param_len,
                hyper::LEN - hyper::HOST_LEN
            ));
        }
        if state
            .buffers
            .iter()
            .flatten()
            .chain(&state.counters)
            .any(|v| !v.is_finite())
        {
            return wrong("it holds a value that is not finite".into());
        }
        self.set_optimizer(
            optimizer,
            config.learning_rate,
            config.weight_decay,
            config.clipping,
        )?;
        for (i, values) in state.buffers.iter().enumerate() {
            self.backend.write(self.optimizer_state[i], 0, values)?;
        }
        self.backend
            .write(self.hyper, hyper::HOST_LEN, &state.counters)?;
        self.steps = state.steps;
        // The restored state is worth keeping: another rule may not silently zero it.
        self.rule_steps = state.steps.max(1);
        Ok(())
    }
}
