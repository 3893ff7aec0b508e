//! The `public` section: routes that need no key.

use super::*;

pub(super) fn compile(
    b: &Bundle,
    service_names: &HashMap<&str, usize>,
    errs: &mut Errs,
) -> Vec<Public> {
    let mut public = Vec::new();
    for (i, p) in b.public.iter().enumerate() {
        let at = format!("public[{i}]");
        let service = service_names.get(p.service.as_str()).copied();
        if service.is_none() {
            errs.push(
                format!("{at}.service"),
                format!("unknown service `{}`", p.service),
            );
        }
        errs.methods(&format!("{at}.methods"), &p.methods);
        let path = match config_segments(&p.path) {
            Ok(segs) => Some(segs),
            Err(e) => {
                errs.push(format!("{at}.path"), format!("not a normalised path: {e}"));
                None
            }
        };
        if let (Some(path), Some(svc)) = (&path, service.and_then(|s| b.services.get(s))) {
            let prefix = svc.matcher.path_prefix.as_deref().map(config_segments);
            if let Some(Ok(prefix)) = prefix {
                if !path.starts_with(prefix.as_slice()) {
                    errs.push(
                        format!("{at}.path"),
                        format!("outside service `{}`'s path_prefix", svc.name),
                    );
                }
            }
        }
        if let (Some(service), Some(path)) = (service, path) {
            public.push(Public {
                service,
                methods: p.methods.clone(),
                path,
            });
        }
    }
    public
}
