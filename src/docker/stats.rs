//! Resource use of running containers, as `docker stats` measures it: CPU over the engine's sampling interval
//! and memory without the page cache.

use super::{DockerClient, DockerError, is_status};
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

/// One sample of a container's use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceUse {
    /// CPU in millicores (1000 = one core busy) over the engine's last sampling interval (about a second).
    pub cpu_millicores: f64,
    /// Memory in bytes, page cache excluded (what `docker stats` shows).
    pub memory_bytes: u64,
}

impl DockerClient {
    /// Samples a running container's CPU and memory. Takes about a second: the engine compares two readings.
    /// `None` when the container is gone or not running.
    pub async fn container_stats(&self, id: &str) -> Result<Option<ResourceUse>, DockerError> {
        let docker = self.client().await?;
        let options = StatsOptionsBuilder::default().stream(false).one_shot(false).build();
        let mut stream = docker.stats(id, Some(options));
        match stream.next().await {
            Some(Ok(s)) => Ok(resource_use(&s)),
            Some(Err(e)) if is_status(&e, 404) => Ok(None),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }
}

/// CPU and memory from one stats answer, computed the way the `docker stats` command does.
pub(crate) fn resource_use(s: &ContainerStatsResponse) -> Option<ResourceUse> {
    let cpu = s.cpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0);
    let system = cpu.system_cpu_usage.unwrap_or(0);
    let (pre_total, pre_system) = s
        .precpu_stats
        .as_ref()
        .map(|p| (p.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0), p.system_cpu_usage.unwrap_or(0)))
        .unwrap_or((0, 0));
    let cpus = cpu
        .online_cpus
        .filter(|&n| n > 0)
        .or_else(|| cpu.cpu_usage.as_ref().and_then(|u| u.percpu_usage.as_ref()).map(|v| v.len() as u32))
        .unwrap_or(1);
    let cpu_delta = total.saturating_sub(pre_total) as f64;
    let system_delta = system.saturating_sub(pre_system) as f64;
    let cpu_millicores =
        if pre_system > 0 && system_delta > 0.0 { cpu_delta / system_delta * f64::from(cpus) * 1000.0 } else { 0.0 };
    let mem = s.memory_stats.as_ref()?;
    let usage = mem.usage?;
    // cgroup v1 reports the page cache as `total_inactive_file`, v2 as `inactive_file`.
    let cache = mem
        .stats
        .as_ref()
        .and_then(|m| m.get("total_inactive_file").or_else(|| m.get("inactive_file")).copied())
        .unwrap_or(0);
    Some(ResourceUse { cpu_millicores, memory_bytes: usage.saturating_sub(cache) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};
    use std::collections::HashMap;

    fn sample(total: u64, system: u64, pre_total: u64, pre_system: u64, cpus: u32) -> ContainerStatsResponse {
        let cpu = |t, s| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage { total_usage: Some(t), ..Default::default() }),
            system_cpu_usage: Some(s),
            online_cpus: Some(cpus),
            ..Default::default()
        };
        ContainerStatsResponse {
            cpu_stats: Some(cpu(total, system)),
            precpu_stats: Some(cpu(pre_total, pre_system)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(50 << 20),
                stats: Some(HashMap::from([("total_inactive_file".to_owned(), 10 << 20)])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn half_a_core_on_a_two_core_host_is_500_millicores() {
        // The container used 0.5 s of CPU while the host's two cores together ran 2 s.
        let u = resource_use(&sample(1_500_000_000, 10_000_000_000, 1_000_000_000, 8_000_000_000, 2)).unwrap();
        assert!((u.cpu_millicores - 500.0).abs() < 0.01, "{u:?}");
        assert_eq!(u.memory_bytes, 40 << 20, "page cache is not counted");
    }

    #[test]
    fn a_first_sample_without_a_previous_reading_is_zero_cpu() {
        let u = resource_use(&sample(1_500_000_000, 10_000_000_000, 0, 0, 2)).unwrap();
        assert_eq!(u.cpu_millicores, 0.0);
    }
}
