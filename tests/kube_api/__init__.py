"""Test Kubernetes API server: kmock's KubernetesEmulator made faithful enough for the official client and kubectl.

Run in its own process (`python -m tests.kube_api --port N`): the fixtures in tests/kube_fixtures.py do it.
kmock serves HTTP, parses requests and stores objects (`self.objects`, with their history) and the resource table
(`self.resources`); this module adds what real clients rely on:
- discovery as a real API server answers it: legacy (/api, /apis, /api/v1, /apis/batch/v1) and aggregated
  (apidiscovery.k8s.io/v2, which kubectl asks for first), plus the OpenAPI v3 index kubectl reads to learn that
  the server validates fields itself (`fieldValidation`);
- lists sorted by namespace/name with label and field selectors, chunked by `limit`/`continue` over a consistent
  snapshot (`remainingItemCount` when unfiltered, 410 Expired for a forgotten token), Table output for kubectl;
- create/get/update (PUT)/patch (merge, strategic as merge, JSON patch)/delete/deletecollection/watch, with uid,
  resourceVersion, generation, 409 on a stale resourceVersion, 422 on an immutable Job or Pod field, Job defaulting
  (selector, controller labels), `dryRun=All`, `fieldValidation=Strict|Warn` against the official schemas;
- deletion propagation as the garbage collector does it: Background, Foreground (owner kept with the
  foregroundDeletion finalizer until its dependents are gone), Orphan (dependents kept, ownerReferences removed;
  the default for batch/v1 Jobs, with the API server's warning), finalizers;
- pod logs, exec (only `tar xmf - -C DIR`, for `make copy`), and test controls under /_test/ (seed, faults, logs,
  a forced page size, a garbage-collector delay, a fake Job controller, the request log).
Not emulated: authentication and RBAC, admission and quotas, server-side apply, strategic-merge list semantics.
"""
