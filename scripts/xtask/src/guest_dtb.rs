//! The device tree each guest is handed in `x0`: its RAM, vCPUs, PSCI and console.
//!
//! Only what the hypervisor actually gives the VM is described. No `interrupts` on the UART
//! and no interrupt controller yet: the vGIC comes later, and then this grows `/intc`.

use tessera_config::{Console, MemoryRegion};
use vm_fdt::FdtWriter;

/// What goes into one guest's tree.
#[derive(Debug, Clone)]
pub struct GuestDtb<'a> {
    pub vm_name: &'a str,
    pub bootargs: &'a str,
    /// Guest RAM (only the IPAs are used).
    pub memory: &'a [MemoryRegion],
    pub vcpu_count: usize,
    pub console: Option<Console>,
}

/// 4 KiB: the SBSA UART register frame (SBSA Generic UART, B.2).
const UART_FRAME: u64 = 0x1000;
/// The console's baud rate as the guest sees it; the emulated UART has no line.
const CONSOLE_BAUD: u32 = 115_200;

impl GuestDtb<'_> {
    /// The console node's path, as `stdout-path` names it.
    pub fn console_path(&self) -> Option<String> {
        self.console.map(|c| format!("/uart@{:x}", c.ipa))
    }

    /// The flattened tree.
    pub fn build(&self) -> Result<Vec<u8>, vm_fdt::Error> {
        let mut fdt = FdtWriter::new()?;
        let root = fdt.begin_node("")?;
        fdt.property_u32("#address-cells", 2)?;
        fdt.property_u32("#size-cells", 2)?;
        fdt.property_string("compatible", "tessera,vm")?;
        fdt.property_string("model", &format!("tessera,{}", self.vm_name))?;

        let chosen = fdt.begin_node("chosen")?;
        fdt.property_string("bootargs", self.bootargs)?;
        if let Some(path) = self.console_path() {
            fdt.property_string("stdout-path", &path)?;
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

        if let Some(console) = self.console {
            let uart = fdt.begin_node(&format!("uart@{:x}", console.ipa))?;
            fdt.property_string("compatible", "arm,sbsa-uart")?;
            fdt.property_array_u64("reg", &[console.ipa, UART_FRAME])?;
            fdt.property_u32("current-speed", CONSOLE_BAUD)?;
            fdt.end_node(uart)?;
        }

        fdt.end_node(root)?;
        fdt.finish()
    }
}
