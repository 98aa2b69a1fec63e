//! The `gaze` binary's memory allocator: glibc's malloc for blocks below 32 MiB, kept by the
//! heap between passes ([`keep_freed_memory`]), and mimalloc for larger ones.
//!
//! Why: glibc serves every block of 32 MiB or more (its largest mmap threshold) with a fresh
//! `mmap` and returns it with `munmap` on free: page faults, zeroed pages and TLB shootdowns
//! on every allocation. A batch of 8 SR maps (64 channels at 128²: 33.5 MiB) allocates such
//! blocks all the time: `vapsr_x4` at batch 8 spent 32 s in the kernel for 17 s of user time.
//! And by default glibc gives freed memory at the top of a heap back to the system past a
//! threshold that follows the block sizes seen (a few MiB), to fault it in again on the next
//! pass: VapSR's batch-1 pass took 340–400 ms against 250 with mimalloc alone. mimalloc alone
//! keeps more memory per thread, though: the first pass of resnet26t or halonet50ts grew by 30
//! and 45 MiB against 19 and 25 with glibc (PyTorch: 28 and 46). Both together keep glibc's
//! footprint and mimalloc's reuse of large blocks (README, Benchmarks).
//!
//! A library user picks their own allocator; this is the binary's choice.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks from this size on go to mimalloc (glibc's largest mmap threshold, 32 MiB on 64-bit).
const LARGE: usize = 32 << 20;

/// glibc's malloc for small blocks, mimalloc for large ones (module docs).
pub struct GazeAllocator;

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is returned to the allocator that served it: the choice depends on the
// block's size only, which `dealloc` and `realloc` are given as allocated.
unsafe impl GlobalAlloc for GazeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator this size selects (see `alloc`).
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract; across the threshold the block moves to the other
        // allocator (a new block, the common prefix copied, the old one freed).
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// Makes glibc keep freed memory for reuse: blocks below 32 MiB always from the heap (no
/// moving mmap threshold) and no automatic trimming of the heaps (`gaze bench` returns free
/// memory explicitly before it measures). Call once at the start of `main`; no effect off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes glibc's allocation policy; called before any thread is
        // started.
        unsafe {
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_MMAP_THRESHOLD, LARGE as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks on both sides of the threshold, and reallocations across it, keep their bytes.
    #[test]
    fn blocks_keep_their_contents_across_the_threshold() {
        let alloc = GazeAllocator;
        for (from, to) in [
            (64, 4096),
            (1024, LARGE + 8),
            (LARGE + 8, 1024),
            (LARGE, LARGE * 2),
        ] {
            let layout = Layout::from_size_align(from, 64).unwrap();
            // SAFETY: a fresh block of `from` bytes, written and read within its size, freed
            // once with the layout it has.
            unsafe {
                let p = alloc.alloc(layout);
                assert!(!p.is_null());
                for i in (0..from).step_by(4093) {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = alloc.realloc(p, layout, to);
                assert!(!q.is_null());
                assert_eq!(q as usize % 64, 0, "alignment kept");
                for i in (0..from.min(to)).step_by(4093) {
                    assert_eq!(*q.add(i), (i % 251) as u8, "byte {i} of {from} → {to}");
                }
                alloc.dealloc(q, Layout::from_size_align(to, 64).unwrap());
                let z = alloc.alloc_zeroed(Layout::from_size_align(to, 64).unwrap());
                assert!((0..to).step_by(4093).all(|i| *z.add(i) == 0));
                alloc.dealloc(z, Layout::from_size_align(to, 64).unwrap());
            }
        }
    }
}
