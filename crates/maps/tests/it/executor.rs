//! The executor against an in-process engine that fails where asked: faults a real engine
//! cannot be made to produce on demand (a start failing halfway through a plan, a removal
//! failing during the rollback). The real engines are in the end-to-end tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use imgtool_maps::{Action, Engine, Error, ExecOutcome, Health, Observed, RunOptions, Seen, VolumeSpecOut, execute, plan};

#[derive(Default)]
struct Fake {
    /// Every call, in order: `create NAME`, `start NAME`, `remove NAME`, ...
    calls: Mutex<Vec<String>>,
    containers: Mutex<BTreeSet<String>>,
    volumes: Mutex<BTreeSet<String>>,
    /// Calls (`start NAME`) that fail.
    fail: BTreeSet<String>,
}

impl Fake {
    fn call(&self, what: String) -> Result<(), Error> {
        self.calls.lock().unwrap().push(what.clone());
        if self.fail.contains(&what) {
            return Err(Error::Engine { engine: "fake".into(), call: "call", target: what, why: "asked to fail".into() });
        }
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Engine for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }
    async fn containers(&self, _: &str, _: &str) -> Result<Vec<Seen>, Error> {
        Ok(Vec::new())
    }
    async fn image_id(&self, _: &str) -> Result<Option<String>, Error> {
        Ok(Some("sha256:1".into()))
    }
    async fn load(&self, _: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>) -> Result<(), Error> {
        Ok(())
    }
    async fn create(&self, name: &str, _: &serde_json::Value) -> Result<String, Error> {
        self.call(format!("create {name}"))?;
        self.containers.lock().unwrap().insert(name.into());
        Ok(name.into())
    }
    async fn start(&self, id: &str) -> Result<(), Error> {
        // Long enough that containers not waiting for each other overlap.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.call(format!("start {id}"))
    }
    async fn stop(&self, id: &str, _: Option<i64>) -> Result<(), Error> {
        self.call(format!("stop {id}"))
    }
    async fn kill(&self, id: &str, _: &str) -> Result<(), Error> {
        self.call(format!("kill {id}"))
    }
    async fn remove(&self, id: &str) -> Result<(), Error> {
        self.call(format!("remove {id}"))?;
        self.containers.lock().unwrap().remove(id);
        Ok(())
    }
    async fn health(&self, _: &str) -> Result<Health, Error> {
        Ok(Health::None)
    }
    async fn exec(&self, id: &str, _: &[String], _: Option<&str>) -> Result<ExecOutcome, Error> {
        self.call(format!("exec {id}"))?;
        Ok(ExecOutcome { code: 0, output: String::new() })
    }
    async fn put_archive(&self, id: &str, _: &str, _: Vec<u8>) -> Result<(), Error> {
        self.call(format!("put {id}"))
    }
    async fn ensure_volume(&self, v: &VolumeSpecOut, _: Option<(u32, u32)>) -> Result<bool, Error> {
        self.call(format!("volume {}", v.name))?;
        Ok(self.volumes.lock().unwrap().insert(v.name.clone()))
    }
    async fn volumes(&self, _: &str, _: &str) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    async fn remove_volume(&self, name: &str) -> Result<(), Error> {
        self.call(format!("remove-volume {name}"))?;
        self.volumes.lock().unwrap().remove(name);
        Ok(())
    }
    async fn ensure_network(&self, name: &str, _: &serde_json::Value) -> Result<bool, Error> {
        self.call(format!("network {name}"))?;
        Ok(true)
    }
    async fn networks(&self, _: &str, _: &str) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    async fn remove_network(&self, name: &str) -> Result<(), Error> {
        self.call(format!("remove-network {name}"))
    }
    async fn remove_image(&self, _: &str) -> Result<(), Error> {
        Ok(())
    }
    async fn dangling_images(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    async fn all_containers(&self) -> Result<Vec<Seen>, Error> {
        Ok(Vec::new())
    }
}

/// db <- api (uses db's volume) <- web (links api); cache stands alone.
const MAP: &str = "name: m\ndb:\n  image: busybox\n  attaches: data\napi:\n  image: busybox\n  uses: data\nweb:\n  image: busybox\n  links: api\ncache:\n  image: busybox\nvolumes: {data: /data}\n";

fn startup_plan() -> (imgtool_maps::ContainerMap, Vec<imgtool_maps::Step>) {
    let map = imgtool_maps::parse_map(MAP, false, "m").unwrap().resolved().unwrap();
    let steps = plan(&map, &Action::Startup, &[], &Observed::default()).unwrap();
    (map, steps)
}

fn position(calls: &[String], what: &str) -> usize {
    calls.iter().position(|c| c == what).unwrap_or_else(|| panic!("no {what} in {calls:?}"))
}

#[tokio::test]
async fn starts_follow_dependencies_and_unrelated_containers_overlap() {
    let (map, steps) = startup_plan();
    let fake = Fake::default();
    let mut seen = Vec::new();
    execute(&map, &fake, &steps, &RunOptions::default(), &mut |s| seen.push(s.clone())).await.unwrap();
    let calls = fake.calls();
    assert!(position(&calls, "start m.db") < position(&calls, "start m.api"), "{calls:?}");
    assert!(position(&calls, "start m.api") < position(&calls, "start m.web"), "{calls:?}");
    assert!(position(&calls, "volume m.data") < position(&calls, "create m.db"), "{calls:?}");
    // cache needs nothing: it is created before db's start ends.
    assert!(position(&calls, "create m.cache") < position(&calls, "start m.db"), "{calls:?}");
    assert_eq!(seen.len(), steps.len(), "every step reported once");
    assert_eq!(fake.containers.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_failure_halfway_begins_nothing_more_and_takes_back_what_the_run_made() {
    let (map, steps) = startup_plan();
    let fake = Fake { fail: BTreeSet::from(["start m.api".to_string()]), ..Fake::default() };
    let err = execute(&map, &fake, &steps, &RunOptions::default(), &mut |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("fake: call start m.api: asked to fail"), "{err}");
    let calls = fake.calls();
    assert!(!calls.contains(&"start m.web".to_string()), "web started after api failed: {calls:?}");
    assert!(fake.containers.lock().unwrap().is_empty(), "left: {:?}", fake.containers.lock().unwrap());
    assert!(fake.volumes.lock().unwrap().is_empty(), "left: {:?}", fake.volumes.lock().unwrap());
    // Taken back newest first, after the failure.
    let failed_at = position(&calls, "start m.api");
    let removes: Vec<&String> = calls[failed_at..].iter().filter(|c| c.starts_with("remove")).collect();
    assert_eq!(removes.last().map(|s| s.as_str()), Some("remove-volume m.data"), "{calls:?}");
}

#[tokio::test]
async fn a_removal_failing_in_the_rollback_does_not_hide_the_first_error() {
    let (map, steps) = startup_plan();
    let fail = BTreeSet::from(["start m.web".to_string(), "remove m.db".to_string()]);
    let fake = Fake { fail, ..Fake::default() };
    let err = execute(&map, &fake, &steps, &RunOptions::default(), &mut |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("start m.web"), "{err}");
    // Everything else was still taken back.
    let left: BTreeMap<&str, bool> = [("m.db", true), ("m.api", false), ("m.web", false), ("m.cache", false)].into_iter().collect();
    for (name, stays) in left {
        assert_eq!(fake.containers.lock().unwrap().contains(name), stays, "{name}: {:?}", fake.calls());
    }
}
