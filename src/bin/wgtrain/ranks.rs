//! `train --distributed`: this process as one rank of an MPI job (feature `mpi`). Rank 0 prints and
//! writes; every rank trains on its slice of each global batch (see `wgtrain::distributed`).

#[cfg(not(feature = "mpi"))]
use crate::train::invalid;
use crate::TrainArgs;
use wgtrain::distributed::Collective;
use wgtrain::{Device, Result};

/// The job this process is a rank of.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    world: wgtrain::mpi::World,
    #[cfg(not(feature = "mpi"))]
    never: std::convert::Infallible,
}

/// Joins the MPI job under `--distributed`; `None` otherwise.
pub fn start(args: &TrainArgs) -> Result<Option<Ranks>> {
    if !args.distributed {
        return Ok(None);
    }
    join().map(Some)
}

/// This process as a rank of the MPI job that started it (a job of one without mpirun).
pub fn join() -> Result<Ranks> {
    #[cfg(feature = "mpi")]
    {
        Ok(Ranks {
            world: wgtrain::mpi::World::init()?,
        })
    }
    #[cfg(not(feature = "mpi"))]
    Err(invalid(
        "--distributed",
        "this wgtrain was built without MPI; build it with `cargo build --release --features mpi` (Open MPI and libclang installed) and start it with mpirun".into(),
    ))
}

impl Ranks {
    pub fn comm(&self) -> &dyn Collective {
        #[cfg(feature = "mpi")]
        return &self.world;
        #[cfg(not(feature = "mpi"))]
        match self.never {}
    }

    pub fn is_root(&self) -> bool {
        self.comm().rank() == 0
    }

    /// Ends the whole job: a rank that fails must not leave the others waiting in a collective.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        self.world.abort(code);
        #[cfg(not(feature = "mpi"))]
        {
            let _ = code;
            match self.never {}
        }
    }

    /// `auto` and `gpu`: the (local rank mod count)-th hardware adapter of this host, so the ranks of a
    /// host share its GPUs out; any other choice as given.
    pub fn device(&self, device: Device) -> Result<Device> {
        if !matches!(device, Device::Auto | Device::Gpu) {
            return Ok(device);
        }
        let adapters = wgtrain::gpu::adapter_summaries();
        let hardware = |a: &&wgtrain::gpu::AdapterSummary| {
            matches!(
                a.device_type.as_str(),
                "discrete" | "integrated" | "virtual"
            )
        };
        // One entry per GPU: GL lists the same GPUs again, so it counts only when it is all there is.
        let native: Vec<_> = adapters
            .iter()
            .filter(hardware)
            .filter(|a| a.api != "gl")
            .collect();
        let listed = if native.is_empty() {
            adapters.iter().filter(hardware).collect()
        } else {
            native
        };
        match listed.len() {
            0 => Ok(device),
            n => Ok(Device::Adapter(listed[self.local_rank() % n].index)),
        }
    }

    fn local_rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        return self.world.local_rank();
        #[cfg(not(feature = "mpi"))]
        match self.never {}
    }
}
