//! The device tree each guest is handed in `x0`: its RAM, vCPUs, PSCI, vGIC, timer, console
//! and, for Linux, its initrd.
//!
//! Only what the hypervisor actually gives the VM is described, in the form Linux's bindings
//! ask for (`Documentation/devicetree/bindings/`): `interrupt-controller/arm,gic-v3.yaml`,
//! `timer/arm,arch_timer.yaml`, `serial/arm,sbsa-uart.yaml`, `chosen.yaml`. The same tree
//! serves every guest: the bare-metal guest reads it too (`guests/baremetal/src/dt.rs`).

use tessera_config::{Console, MemRange, MemoryRegion, TimerPpis, VgicFrames};
use vm_fdt::FdtWriter;

use crate::devices::PassDevice;

/// What goes into one guest's tree.
#[derive(Debug, Clone)]
pub struct GuestDtb<'a> {
    pub vm_name: &'a str,
    pub bootargs: &'a str,
    /// Guest RAM (only the IPAs are used).
    pub memory: &'a [MemoryRegion],
    pub vcpu_count: usize,
    pub console: Option<Console>,
    /// The vGIC's distributor and redistributor frames.
    pub vgic: VgicFrames,
    /// INTID of the vGIC's maintenance interrupt (a PPI), as the board's GIC has it.
    pub maintenance_intid: u32,
    /// The generic timer's PPIs, as the board's GIC has them.
    pub timer: TimerPpis,
    /// Where the initrd lies, if the VM has one.
    pub initrd: Option<MemRange>,
    /// Passed-through devices: those with a board node get a copy of it.
    pub devices: &'a [PassDevice],
    /// For an isolation test guest (`test-probe-targets;`): host-physical ranges it is told
    /// to aim at, written to `/chosen` as `tessera,probe-targets` (`<base size>` pairs, 64-bit)
    /// and `tessera,probe-target-names` (one string per pair).
    pub probe_targets: Option<&'a [ProbeTarget]>,
    /// Whether the console node names its interrupt. A direct-interrupt VM's is left out: no
    /// virtual interrupt reaches such a guest, so it polls its console (`docs/direct-mode.md`).
    pub console_interrupt: bool,
}

/// One named host-physical range an attack guest probes (the hypervisor, another VM's RAM, a
/// device of the board).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub name: String,
    pub range: MemRange,
}

/// 4 KiB: the SBSA UART register frame (SBSA Generic UART, B.2).
const UART_FRAME: u64 = 0x1000;
/// The console's baud rate as the guest sees it; the emulated UART has no line.
const CONSOLE_BAUD: u32 = 115_200;
/// The GIC's phandle: the only node anything refers to.
const GIC_PHANDLE: u32 = 1;

/// First cell of a GIC interrupt specifier (`arm,gic-v3.yaml`; `dt-bindings/interrupt-controller/arm-gic.h`).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Third cell: trigger type (`dt-bindings/interrupt-controller/irq.h`).
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_LEVEL_LOW: u32 = 8;
/// INTIDs of the first PPI and the first SPI (IHI 0069 2.2.1).
const FIRST_PPI: u32 = 16;
const FIRST_SPI: u32 = 32;

/// `GIC_CPU_MASK_SIMPLE(n)` (arm-gic.h): bits 15:8 of a PPI's flags name the CPUs it is wired
/// to. GICv3 ignores them; the timer binding's examples carry them, so they are kept.
fn gic_cpu_mask_simple(vcpu_count: usize) -> u32 {
    let cpus = u32::try_from(vcpu_count.min(8)).unwrap_or(8);
    (((1u32 << cpus) - 1) & 0xff) << 8
}

/// A PPI's `<GIC_PPI n flags>`; INTIDs outside the PPI range saturate to PPI 0 (the board
/// descriptions are checked against QEMU's own tree by the platform crate's tests).
fn ppi(intid: u32, flags: u32) -> [u32; 3] {
    [GIC_PPI, intid.saturating_sub(FIRST_PPI), flags]
}

impl GuestDtb<'_> {
    /// The console node's path, as `stdout-path` names it.
    pub fn console_path(&self) -> Option<String> {
        self.console.map(|c| format!("/uart@{:x}", c.ipa))
    }

    /// The vGIC node's path.
    pub fn gic_path(&self) -> String {
        format!("/interrupt-controller@{:x}", self.vgic.gicd.base)
    }

    /// The flattened tree.
    pub fn build(&self) -> Result<Vec<u8>, vm_fdt::Error> {
        let mut fdt = FdtWriter::new()?;
        let root = fdt.begin_node("")?;
        fdt.property_u32("#address-cells", 2)?;
        fdt.property_u32("#size-cells", 2)?;
        fdt.property_string("compatible", "tessera,vm")?;
        fdt.property_string("model", &format!("tessera,{}", self.vm_name))?;
        fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

        let chosen = fdt.begin_node("chosen")?;
        fdt.property_string("bootargs", self.bootargs)?;
        if let Some(path) = self.console_path() {
            fdt.property_string("stdout-path", &path)?;
        }
        if let Some(initrd) = self.initrd {
            // chosen.yaml: start inclusive, end exclusive; 64-bit values are accepted.
            fdt.property_u64("linux,initrd-start", initrd.base)?;
            fdt.property_u64("linux,initrd-end", initrd.base.saturating_add(initrd.size))?;
        }
        if let Some(targets) = self.probe_targets {
            let cells: Vec<u64> = targets.iter().flat_map(|t| [t.range.base, t.range.size]).collect();
            fdt.property_array_u64("tessera,probe-targets", &cells)?;
            fdt.property_string_list(
                "tessera,probe-target-names",
                targets.iter().map(|t| t.name.clone()).collect(),
            )?;
        }
        fdt.end_node(chosen)?;

        for region in self.memory {
            let memory = fdt.begin_node(&format!("memory@{:x}", region.ipa))?;
            fdt.property_string("device_type", "memory")?;
            fdt.property_array_u64("reg", &[region.ipa, region.size])?;
            fdt.end_node(memory)?;
        }

        let cpus = fdt.begin_node("cpus")?;
        fdt.property_u32("#address-cells", 1)?;
        fdt.property_u32("#size-cells", 0)?;
        for index in 0..self.vcpu_count {
            // vCPU i's MPIDR_EL1 reads Aff0 = i (the hypervisor sets VMPIDR_EL2 so).
            let cpu = fdt.begin_node(&format!("cpu@{index:x}"))?;
            fdt.property_string("device_type", "cpu")?;
            fdt.property_string("compatible", "arm,armv8")?;
            fdt.property_u32("reg", u32::try_from(index).unwrap_or(u32::MAX))?;
            fdt.property_string("enable-method", "psci")?;
            fdt.end_node(cpu)?;
        }
        fdt.end_node(cpus)?;

        // The hypervisor implements PSCI 1.0 for its guests over HVC (DEN 0022).
        let psci = fdt.begin_node("psci")?;
        fdt.property_string_list(
            "compatible",
            vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
        )?;
        fdt.property_string("method", "hvc")?;
        fdt.end_node(psci)?;

        // arm,gic-v3.yaml: reg = GICD, then one GICR region covering every vCPU's frames.
        let gic = fdt.begin_node(self.gic_path().trim_start_matches('/'))?;
        fdt.property_string("compatible", "arm,gic-v3")?;
        fdt.property_null("interrupt-controller")?;
        fdt.property_u32("#interrupt-cells", 3)?;
        fdt.property_u32("#address-cells", 2)?;
        fdt.property_u32("#size-cells", 2)?;
        fdt.property_null("ranges")?;
        fdt.property_array_u64(
            "reg",
            &[
                self.vgic.gicd.base,
                self.vgic.gicd.size,
                self.vgic.gicr.base,
                self.vgic.gicr.size,
            ],
        )?;
        fdt.property_array_u32(
            "interrupts",
            &ppi(self.maintenance_intid, IRQ_TYPE_LEVEL_HIGH),
        )?;
        fdt.property_phandle(GIC_PHANDLE)?;
        fdt.end_node(gic)?;

        // arm,arch_timer.yaml: secure physical, non-secure physical, virtual, hypervisor.
        let timer = fdt.begin_node("timer")?;
        fdt.property_string("compatible", "arm,armv8-timer")?;
        let flags = gic_cpu_mask_simple(self.vcpu_count) | IRQ_TYPE_LEVEL_LOW;
        let t = self.timer;
        let interrupts: Vec<u32> = [t.secure_phys, t.nonsecure_phys, t.virt, t.hyp_phys]
            .into_iter()
            .flat_map(|intid| ppi(intid, flags))
            .collect();
        fdt.property_array_u32("interrupts", &interrupts)?;
        fdt.property_null("always-on")?;
        fdt.end_node(timer)?;

        if let Some(console) = self.console {
            let uart = fdt.begin_node(&format!("uart@{:x}", console.ipa))?;
            fdt.property_string("compatible", "arm,sbsa-uart")?;
            fdt.property_array_u64("reg", &[console.ipa, UART_FRAME])?;
            // Linux's sbsa-uart driver needs both: it cannot probe without an interrupt,
            // and it takes the (fixed) baud rate from `current-speed`.
            if self.console_interrupt {
                fdt.property_array_u32(
                    "interrupts",
                    &[
                        GIC_SPI,
                        console.intid.saturating_sub(FIRST_SPI),
                        IRQ_TYPE_LEVEL_HIGH,
                    ],
                )?;
            }
            fdt.property_u32("current-speed", CONSOLE_BAUD)?;
            fdt.end_node(uart)?;
        }

        // Passed-through devices: the board's node, its `reg` at the VM's IPAs (2 + 2 cells,
        // as this tree's root says) and its interrupts parented by the vGIC (same 3-cell
        // specifiers: virtual INTID = physical INTID). Phandle references the guest cannot
        // resolve were dropped when the device was resolved.
        for device in self.devices {
            let (Some(node), Some(first)) = (&device.guest_node, device.windows.first()) else { continue };
            let base = node.name.split('@').next().unwrap_or(&node.name);
            let handle = fdt.begin_node(&format!("{base}@{:x}", first.ipa))?;
            for property in &node.properties {
                fdt.property(&property.name, &property.value)?;
            }
            let reg: Vec<u64> = device.windows.iter().flat_map(|w| [w.ipa, w.size]).collect();
            fdt.property_array_u64("reg", &reg)?;
            fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
            fdt.end_node(handle)?;
        }

        fdt.end_node(root)?;
        fdt.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks_follow_gic_cpu_mask_simple() {
        assert_eq!(gic_cpu_mask_simple(1), 0x100);
        assert_eq!(gic_cpu_mask_simple(2), 0x300);
        assert_eq!(gic_cpu_mask_simple(4), 0xf00);
        assert_eq!(gic_cpu_mask_simple(8), 0xff00);
        assert_eq!(gic_cpu_mask_simple(12), 0xff00);
    }
}
