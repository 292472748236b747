"""A renderer of the kustomize subset deploy/kubernetes/ uses, so the tests need no kubectl.

Supported kustomization fields (anything else is refused, never ignored):
`resources` (files, or directories holding a kustomization.yaml), `namespace`, `labels`
(`pairs` added to every object's `metadata.labels`; `includeSelectors` and
`includeTemplates` must be false or absent), `patches` (strategic merge patches from `path`,
applied to the object of the same kind and name, or to an explicit `target` kind and name)
and `images` (`name` -> `newName` / `newTag` / `digest` on every container and init
container). Transformers run in kustomize's order: patches, namespace, labels, images.

Strategic merge is the subset the patches here use: maps merge key by key, `null` removes a
key, lists of containers, init containers, env, volumes, volume mounts and ports merge on
their key (the patch's items first, then the base's others, as kustomize orders them), any
other list is replaced (as kustomize does for custom resources).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "patches", "images"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
# Kinds the namespace transformer leaves alone (cluster-scoped ones this subset could meet).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class KustomizeError(ValueError):
    """The kustomization uses something outside the supported subset, or is inconsistent."""


def load_documents(path: Path) -> list[Object]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise KustomizeError(f"{path}: not a Kubernetes object: {doc!r:.80}")
    return docs


def render(directory: Path) -> list[Object]:
    """The objects `kubectl kustomize DIRECTORY` would print (in resource order)."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: unsupported fields {sorted(unknown)}")

    objects: list[Object] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        objects.extend(render(target) if target.is_dir() else load_documents(target))
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        key = identity(obj)
        if key in seen:
            raise KustomizeError(f"{path}: {key[0]}/{key[1]} is defined twice")
        seen.add(key)

    for patch in spec.get("patches", []):
        apply_patch(objects, directory, patch)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise KustomizeError(f"{path}: labels with includeSelectors/includeTemplates")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        set_image(objects, image)
    return objects


def identity(obj: Object) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def apply_patch(objects: list[Object], directory: Path, patch: Object) -> None:
    if set(patch) - {"path", "target"}:
        raise KustomizeError(f"unsupported patch fields: {sorted(patch)}")
    for doc in load_documents(directory / patch["path"]):
        target = patch.get("target", {})
        kind = target.get("kind", doc["kind"])
        name = target.get("name", doc["metadata"]["name"])
        matches = [o for o in objects if identity(o) == (kind, name)]
        if len(matches) != 1:
            raise KustomizeError(f"patch {patch['path']}: no single {kind}/{name} to patch")
        merged = merge(matches[0], doc)
        matches[0].clear()
        matches[0].update(merged)


def merge(base: Any, patch: Any, field: str = "") -> Any:
    """`patch` applied to `base` as a strategic merge patch (the subset above)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    key = MERGE_KEYS.get(field)
    if key and isinstance(base, list) and isinstance(patch, list):
        # as kustomize orders them: the patch's items (merged), then the base's others
        by_key = {item.get(key): item for item in base}
        merged = [merge(by_key[i.get(key)], i) if i.get(key) in by_key else i for i in patch]
        patched = {item.get(key) for item in patch}
        rest = [copy.deepcopy(item) for item in base if item.get(key) not in patched]
        return copy.deepcopy(merged) + rest
    return copy.deepcopy(patch)


def pod_spec(obj: Object) -> Object | None:
    template = obj.get("spec", {}).get("template")
    if obj["kind"] == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
    return template.get("spec") if isinstance(template, dict) else None


def set_image(objects: list[Object], image: Object) -> None:
    name = image["name"]
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            current = container["image"]
            repo, tag = split_image(current)
            if repo != name:
                continue
            new_repo = image.get("newName", repo)
            if "digest" in image:
                container["image"] = f"{new_repo}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new_repo}:{new_tag}" if new_tag else new_repo


def split_image(reference: str) -> tuple[str, str | None]:
    """("repo", "tag") of an image reference (digests are kept with the repository)."""
    if "@" in reference:
        return reference, None
    head, _, last = reference.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        return (f"{head}/{last}" if head else last), tag
    return reference, None
