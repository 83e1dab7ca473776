//! Networks and named volumes: created on demand, idempotently; volumes are only removed when asked.

use super::{DockerClient, DockerError, is_status, labels};
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};

impl DockerClient {
    /// Makes sure a bridge network `name` exists and returns its id. An existing network of that name is reused
    /// as it is (its labels are not changed); a new one gets `labels` plus `berth.managed=true`. Concurrent calls
    /// through one client never create two networks with the same name.
    pub async fn ensure_network(&self, name: &str, labels: &labels::Labels) -> Result<String, DockerError> {
        let docker = self.client().await?;
        let _one_at_a_time = self.network_lock.lock().await;
        match docker.inspect_network(name, None).await {
            Ok(existing) => return Ok(existing.id.unwrap_or_else(|| name.to_owned())),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e.into()),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels::to_engine(labels)),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(created) => Ok(created.id),
            Err(e) if is_status(&e, 409) => {
                // Created meanwhile by another process: use it.
                let existing = docker.inspect_network(name, None).await?;
                Ok(existing.id.unwrap_or_else(|| name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure a local volume `name` exists. An existing volume is reused with its data; a new one gets
    /// `labels` plus `berth.managed=true`. Never removes or empties anything.
    pub async fn ensure_volume(&self, name: &str, labels: &labels::Labels) -> Result<(), DockerError> {
        let docker = self.client().await?;
        match docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e.into()),
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some("local".to_owned()),
            labels: Some(labels::to_engine(labels)),
            ..Default::default()
        };
        // Creating a volume that exists already is a no-op in the engine, so a race here is harmless.
        docker.create_volume(request).await?;
        Ok(())
    }

    /// Whether volume `name` exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, DockerError> {
        let docker = self.client().await?;
        match docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The names of the volumes Berth made that carry every label in `filters`, sorted.
    pub async fn list_volumes(&self, filters: &[(&str, &str)]) -> Result<Vec<String>, DockerError> {
        let docker = self.client().await?;
        let options = ListVolumesOptionsBuilder::default().filters(&labels::label_filter(filters)).build();
        let listed = docker.list_volumes(Some(options)).await?;
        let mut names: Vec<String> = listed.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect();
        names.sort();
        Ok(names)
    }

    /// Deletes volume `name` and its data. Only for an explicit user request; a missing volume is not an error.
    /// A volume still mounted by a container is kept: [`DockerError::Conflict`].
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) if is_status(&e, 409) => Err(DockerError::Conflict { message: e.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes network `name`. A missing network is not an error; one with containers attached is a
    /// [`DockerError::Conflict`].
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        match docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) if is_status(&e, 409) || is_status(&e, 403) => Err(DockerError::Conflict { message: e.to_string() }),
            Err(e) => Err(e.into()),
        }
    }
}
