//! The cluster's Ethernet segment: a learning switch in the harness itself,
//! over unix datagram sockets (QEMU's `-netdev dgram`). It needs no root
//! and no host networking, and frames go nowhere but to the VMs.
//!
//! Each VM has two ports: its NIC, and its own user-mode network stack,
//! which carries only the host's forwards. A user-mode stack takes every
//! frame it is handed as its own (it ignores the destination MAC), so it
//! must see nothing but frames addressed to it or broadcast, and only from
//! its own VM. The switch can also cut a VM off from the other VMs while
//! the host still reaches it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::UnixDatagram;
use tokio::task::JoinHandle;

pub struct PortPaths {
    /// The switch's end, QEMU's `remote.path`.
    pub switch: PathBuf,
    /// QEMU's end, its `local.path`.
    pub vm: PathBuf,
}

/// The NIC port of `name`; `host` selects its user-mode stack's port.
pub fn port_paths(dir: &Path, name: &str, host: bool) -> PortPaths {
    let k = if host { "host-" } else { "" };
    PortPaths {
        switch: dir.join(format!("sw-{k}{name}.sock")),
        vm: dir.join(format!("vm-{k}{name}.sock")),
    }
}

#[derive(Default)]
struct State {
    /// MAC → port index.
    table: HashMap<[u8; 6], usize>,
    /// VMs cut off from the other VMs.
    cut: HashSet<usize>,
}

pub struct Switch {
    names: Vec<String>,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Switch {
    /// Port 2i is VM i's NIC, port 2i+1 its user-mode stack.
    pub fn start(dir: &Path, names: &[&str]) -> std::io::Result<Switch> {
        let mut ports = Vec::new();
        for name in names {
            for host in [false, true] {
                let p = port_paths(dir, name, host);
                let _ = std::fs::remove_file(&p.switch);
                let _ = std::fs::remove_file(&p.vm);
                ports.push((UnixDatagram::bind(&p.switch)?, p.vm));
            }
        }
        let ports: Arc<Vec<(UnixDatagram, PathBuf)>> = Arc::new(ports);
        let state: Arc<Mutex<State>> = Arc::default();
        let mut tasks = Vec::new();
        for i in 0..ports.len() {
            let ports = ports.clone();
            let state = state.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok(n) = ports[i].0.recv(&mut buf).await else {
                        continue;
                    };
                    if n < 14 {
                        continue;
                    }
                    let frame = &buf[..n];
                    let targets = route(&state, i, frame, ports.len());
                    // Never wait for a receiver: a unix datagram queue holds
                    // only a few frames, an emulated guest drains it slowly,
                    // and waiting would stall every frame behind this one.
                    // Dropping is what a congested switch does; TCP resends.
                    // A VM that is down has no socket at all.
                    for j in targets {
                        let _ = ports[j].0.try_send_to(frame, &ports[j].1);
                    }
                }
            }));
        }
        Ok(Switch {
            names: names.iter().map(|s| s.to_string()).collect(),
            state,
            tasks,
        })
    }

    /// Cuts (or restores) `name`'s cable to the other VMs; the host's
    /// forwards to it keep working.
    pub fn set_cut(&self, name: &str, cut: bool) {
        let Some(vm) = self.names.iter().position(|n| n == name) else {
            return;
        };
        let mut s = self.state.lock().unwrap();
        if cut {
            s.cut.insert(vm);
        } else {
            s.cut.remove(&vm);
        }
    }
}

fn route(state: &Mutex<State>, from: usize, frame: &[u8], nports: usize) -> Vec<usize> {
    let dst: [u8; 6] = frame[0..6].try_into().unwrap();
    let src: [u8; 6] = frame[6..12].try_into().unwrap();
    let mut s = state.lock().unwrap();
    if src[0] & 1 == 0 {
        s.table.insert(src, from);
    }
    let vm = from / 2;
    if from % 2 == 1 {
        // The host's stack talks to its own VM only.
        return vec![2 * vm];
    }
    let broadcast = dst[0] & 1 == 1;
    let known = if broadcast {
        None
    } else {
        s.table.get(&dst).copied()
    };
    let allowed = |j: usize| -> bool {
        if j == from {
            return false;
        }
        if j % 2 == 1 {
            // Only its own VM's frames, and only those meant for it.
            return j / 2 == vm && (broadcast || known == Some(j));
        }
        !(s.cut.contains(&vm) || s.cut.contains(&(j / 2)))
    };
    match known {
        Some(j) => {
            if allowed(j) {
                vec![j]
            } else {
                vec![]
            }
        }
        None => (0..nports).filter(|&j| allowed(j)).collect(),
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00, 0, 0]);
        f
    }

    const BCAST: [u8; 6] = [0xff; 6];
    const A: [u8; 6] = [0x52, 0x54, 0, 0x88, 0, 0x11];
    const B: [u8; 6] = [0x52, 0x54, 0, 0x88, 0, 0x12];
    const HOST_A: [u8; 6] = [0x52, 0x55, 10, 88, 0, 201];

    #[test]
    fn user_stacks_see_only_their_own_vms_frames_for_them() {
        let s = Mutex::new(State::default());
        // VM 0's broadcast reaches VM 1 and VM 0's host stack, not VM 1's.
        assert_eq!(route(&s, 0, &frame(BCAST, A), 4), vec![1, 2]);
        assert_eq!(route(&s, 1, &frame(A, HOST_A), 4), vec![0]);
        assert_eq!(route(&s, 2, &frame(A, B), 4), vec![0]);
        // Unicast between VMs never reaches a user stack.
        assert_eq!(route(&s, 0, &frame(B, A), 4), vec![2]);
        assert_eq!(route(&s, 0, &frame(HOST_A, A), 4), vec![1]);
    }

    #[test]
    fn a_cut_vm_keeps_only_its_host() {
        let s = Mutex::new(State::default());
        route(&s, 0, &frame(BCAST, A), 4);
        route(&s, 2, &frame(BCAST, B), 4);
        route(&s, 1, &frame(A, HOST_A), 4);
        s.lock().unwrap().cut.insert(0);
        assert!(route(&s, 0, &frame(B, A), 4).is_empty());
        assert!(route(&s, 2, &frame(A, B), 4).is_empty());
        assert_eq!(route(&s, 0, &frame(BCAST, A), 4), vec![1]);
        assert_eq!(route(&s, 0, &frame(HOST_A, A), 4), vec![1]);
    }
}
