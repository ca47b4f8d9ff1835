//! `gicspray`: what a direct-interrupt guest writes to the GIC CPU interface to try to reach
//! other CPUs or the hypervisor (`docs/direct-mode.md`, `hil-tests/tests/direct.rs`). Each
//! write either traps and is filtered by the hypervisor, or lands in a register that only
//! affects this guest's own CPU.

/// The SGI-generating registers (IHI 0069 12.2.21-22, 12.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgiRegister {
    Sgi1r,
    Sgi0r,
    Asgi1r,
}

pub const SGI_REGISTERS: [SgiRegister; 3] = [SgiRegister::Sgi1r, SgiRegister::Sgi0r, SgiRegister::Asgi1r];

const INTID_SHIFT: u32 = 24;
const IRM: u64 = 1 << 40;

/// Every SGI value sprayed for one INTID: the broadcast (`IRM` = 1), each single Aff0 0..15
/// of cluster 0, all 16 of cluster 0, the full list in cluster Aff1 = 1, in range RS = 1
/// (Aff0 16..31), and with Aff2 and Aff3 = 0xff.
pub fn sgi_values(intid: u32) -> impl Iterator<Item = u64> {
    let id = u64::from(intid & 0xf) << INTID_SHIFT;
    let singles = (0..16).map(move |n| id | (1 << n));
    let wide = [
        id | IRM,
        id | 0xffff,
        id | 0xffff | (1 << 16),
        id | 0xffff | (1 << 44),
        id | 0xffff | (0xff << 32) | (0xff << 48),
    ];
    singles.chain(wide)
}

/// INTIDs the guest does not own, named in `ICC_EOIR0/1_EL1` and `ICC_DIR_EL1` writes: the
/// hypervisor's kick and halt SGIs, the maintenance, hypervisor-timer and physical-timer
/// PPIs, the console UART's SPI (the hypervisor's), another SPI, and a special INTID.
pub const FOREIGN_INTIDS: [u32; 8] = [0, 15, 25, 26, 30, 33, 40, 1020];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_form_for_every_intid() {
        for intid in 0..16 {
            let values: Vec<u64> = sgi_values(intid).collect();
            assert_eq!(values.len(), 21);
            assert!(values.iter().all(|v| (v >> INTID_SHIFT) & 0xf == u64::from(intid)));
            assert_eq!(values.iter().filter(|v| *v & IRM != 0).count(), 1);
            for n in 0..16 {
                assert!(values.contains(&((u64::from(intid) << INTID_SHIFT) | (1 << n))));
            }
        }
    }
}
