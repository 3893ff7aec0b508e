//! Routing: which service a request is for (host and path prefix), and public routes.

use super::*;

impl Engine {
    /// First service whose `match` fits (hosts, path prefix by whole segments, methods).
    pub(super) fn route(&self, head: &RequestHead, target: &Target) -> Option<(usize, &Service)> {
        let host = head.host();
        self.policy.services.iter().enumerate().find(|(_, s)| {
            (s.hosts.is_empty() || s.hosts.iter().any(|h| h.matches(&host)))
                && target.strip_prefix(&s.prefix).is_some()
                && s.methods.as_ref().is_none_or(|m| m.contains(&head.method))
        })
    }
    /// The service of a public route this request takes. A query string or a body is an
    /// input the upstream reads: such a request is not public (it is decided like any
    /// other, with a key).
    pub(super) fn public_service(
        &self,
        head: &RequestHead,
        target: &Target,
        body_follows: bool,
    ) -> Option<&Service> {
        if self.policy.public.is_empty() || !target.query.is_empty() || body_follows {
            return None;
        }
        let (_, routed) = self.route(head, target)?;
        self.policy
            .public
            .iter()
            .filter(|p| p.path == target.segments && p.methods.contains(&head.method))
            .filter_map(|p| self.policy.service(p.service))
            .find(|s| std::ptr::eq(*s, routed))
    }
}
