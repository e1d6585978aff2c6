//! What a trial created, so that exactly that is removed when the trial ends — on success and
//! on failure — and trials sharing an environment never see each other's policies.
//!
//! Only objects the trial *created* are tracked (apply reports `created`); an object that
//! existed before and was merely re-applied is left in place, like the run-id cleanup does.
//! Cleanup order is the reverse of creation (functions first: they live in namespaces the
//! trial may also have created).

use super::render::ObjectRef;

/// Something the trial made, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Object(ObjectRef),
    /// An OpenFaaS function (removed through the gateway, or as its Function object).
    Function(String),
}

#[derive(Debug, Clone, Default)]
pub struct Tracker {
    created: Vec<Created>,
}

impl Tracker {
    /// Records an applied object if this trial created it and it is not tracked yet.
    pub fn object(&mut self, obj: &ObjectRef, created: bool) {
        let c = Created::Object(obj.clone());
        if created && !self.created.contains(&c) {
            self.created.push(c);
        }
    }

    pub fn function(&mut self, name: &str) {
        let c = Created::Function(name.to_string());
        if !self.created.contains(&c) {
            self.created.push(c);
        }
    }

    /// Forgets objects a `delete` step removed explicitly.
    pub fn forget_object(&mut self, obj: &ObjectRef) {
        self.created.retain(|c| c != &Created::Object(obj.clone()));
    }

    pub fn forget_function(&mut self, name: &str) {
        self.created
            .retain(|c| c != &Created::Function(name.to_string()));
    }

    /// Everything still to remove, functions first, then objects newest first.
    pub fn cleanup_order(&self) -> Vec<Created> {
        let mut fns: Vec<Created> = self
            .created
            .iter()
            .rev()
            .filter(|c| matches!(c, Created::Function(_)))
            .cloned()
            .collect();
        fns.extend(
            self.created
                .iter()
                .rev()
                .filter(|c| matches!(c, Created::Object(_)))
                .cloned(),
        );
        fns
    }

    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("n".into()),
            name: name.into(),
        }
    }

    #[test]
    fn only_created_objects_are_removed_functions_first_newest_first() {
        let mut t = Tracker::default();
        t.object(&obj("ConfigMap", "a"), true);
        t.object(&obj("ConfigMap", "pre-existing"), false);
        t.function("env");
        t.object(&obj("ConfigMap", "b"), true);
        t.object(&obj("ConfigMap", "a"), true); // re-applied: tracked once
        assert_eq!(
            t.cleanup_order(),
            vec![
                Created::Function("env".into()),
                Created::Object(obj("ConfigMap", "b")),
                Created::Object(obj("ConfigMap", "a"))
            ]
        );
        t.forget_object(&obj("ConfigMap", "b"));
        t.forget_function("env");
        assert_eq!(
            t.cleanup_order(),
            vec![Created::Object(obj("ConfigMap", "a"))]
        );
    }
}
