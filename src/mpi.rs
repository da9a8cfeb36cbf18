//! MPI as the [`Collective`] of data-parallel training (feature `mpi`: the `mpi` crate over the system's
//! MPI library, such as Open MPI). Start the job with `mpirun -np N …`; every process is one rank.

use crate::distributed::Collective;
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// The job's ranks: MPI initialised for this process, finalised when dropped.
pub struct World {
    world: SimpleCommunicator,
    local_rank: usize,
    local_size: usize,
    /// Last: MPI is finalised after the communicators are released.
    _universe: mpi::environment::Universe,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mpi rank {} of {} (local {} of {})",
            self.rank(),
            self.size(),
            self.local_rank,
            self.local_size
        )
    }
}

impl World {
    /// Initialises MPI once per process; the ranks of one host (MPI's shared-memory split) give each its
    /// local rank, which picks its GPU.
    pub fn init() -> Result<World> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Gpu("MPI is already initialised in this process".into()))?;
        let world = universe.world();
        let local = world.split_shared(world.rank());
        Ok(World {
            local_rank: local.rank() as usize,
            local_size: local.size() as usize,
            world,
            _universe: universe,
        })
    }

    /// This rank's index among the ranks on its host.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Ranks on this host.
    pub fn local_size(&self) -> usize {
        self.local_size
    }

    /// Ends every rank of the job with `code`: what a failing rank does, so the others do not wait in a
    /// collective for it forever.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        self.world.barrier();
    }
}

impl Collective for World {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn allreduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }

    fn broadcast(&self, values: &mut [f32]) -> Result<()> {
        self.world.process_at_rank(0).broadcast_into(values);
        Ok(())
    }
}
