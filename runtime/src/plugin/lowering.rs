//! A faster way to hand a 0.2.0 policy its members.
//!
//! wasmtime 48 lowers a `list<record>` field by field, and every field write looks the
//! instance's memory up again: 8 members of 6 fields were measured at ~0.6 µs, a third of a
//! whole pick. `Members` writes the same bytes with one lookup per list. It is a
//! `#[repr(transparent)]` wrapper of the generated `member` type, so its type check is the
//! generated one (the field names and types of `hangar:plugin/types@0.2.0.member`), and only
//! the byte layout below is written by hand; `the_hand_layout_is_the_canonical_abi_layout`
//! pins it to the canonical ABI's.
//!
//! Deliberately absent: no other type is lowered by hand. This is the one hot list; strings
//! cost a guest allocation each whatever the host does, which is why 0.2.0 lends them.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use super::bindings::v0_2_0::hangar::plugin::types::Member;

/// Canonical ABI layout of `member`: `key: u64` at 0, `weight`, `priority`, `in-flight`
/// (`u32`) at 8, 12, 16, `healthy` (`bool`, one byte) at 20, `ewma-latency-us: u64` at 24;
/// 32 bytes, aligned to 8.
const SIZE: usize = 32;

/// A member as lowered into a 0.2.0 policy (see the module docs).
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(super) struct FastMember(pub Member);

// SAFETY: every item is the generated type's own (its ABI, its flat lowering, its type
// check); only the memory layout is written here, and a test pins it to that ABI.
unsafe impl ComponentType for FastMember {
    type Lower = <Member as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <Member as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Member as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: writes exactly `SIZE` bytes per member at an offset wasmtime bounds-checked and
// aligned for this type, in the layout `ABI` describes.
unsafe impl Lower for FastMember {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        write(&mut cx.as_slice_mut()[offset..][..SIZE], &self.0);
        Ok(())
    }

    fn linear_store_list_to_memory<T>(
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
        items: &[Self],
    ) -> wasmtime::Result<()> {
        let memory = &mut cx.as_slice_mut()[offset..][..items.len() * SIZE];
        for (slot, member) in memory.chunks_exact_mut(SIZE).zip(items) {
            write(slot, &member.0);
        }
        Ok(())
    }
}

fn write(slot: &mut [u8], member: &Member) {
    slot[0..8].copy_from_slice(&member.key.to_le_bytes());
    slot[8..12].copy_from_slice(&member.weight.to_le_bytes());
    slot[12..16].copy_from_slice(&member.priority.to_le_bytes());
    slot[16..20].copy_from_slice(&member.in_flight.to_le_bytes());
    slot[20] = u8::from(member.healthy);
    slot[24..32].copy_from_slice(&member.ewma_latency_us.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_layout_is_the_canonical_abi_layout() {
        // Field offsets follow from sizes and alignments (u64, u32, u32, u32, bool, u64);
        // the whole record's size and alignment are wasmtime's own figures.
        assert_eq!(<Member as ComponentType>::SIZE32, SIZE);
        assert_eq!(<Member as ComponentType>::ALIGN32, 8);
        assert_eq!(<FastMember as ComponentType>::SIZE32, SIZE);
        let mut slot = [0xaa; SIZE];
        write(
            &mut slot,
            &Member {
                key: 0x0102_0304_0506_0708,
                weight: 9,
                priority: 10,
                in_flight: 11,
                healthy: true,
                ewma_latency_us: 12,
            },
        );
        assert_eq!(slot[0..8], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(
            (slot[8], slot[12], slot[16], slot[20], slot[24]),
            (9, 10, 11, 1, 12)
        );
    }
}
