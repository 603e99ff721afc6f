// Validates Kubernetes manifests (YAML, several documents per file, as `kubectl
// kustomize` renders them) against the schemas of Kubernetes and of Strimzi's custom
// resources, offline: the schemas ship inside the npm packages pinned in package.json.
// Usage: node validate.mjs FILE...   Exits 1 on the first file with an invalid document.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// A document's group and version, as the models' import paths spell them.
function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group.endsWith("strimzi.io")) {
    return `@kubernetes-models/strimzi-kafka-operator/${group}/${version}/${kind}`;
  }
  return group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (document.errors.length > 0) {
      console.log(`${file}: not YAML: ${document.errors[0].message}`);
      failures += 1;
      continue;
    }
    const object = document.toJS();
    if (object === null) continue;
    const { apiVersion, kind } = object;
    const name = `${kind}/${object.metadata?.name ?? "?"}`;
    let Model;
    try {
      Model = (await import(modulePath(apiVersion, kind)))[kind];
    } catch {
      console.log(`${file}: ${name}: no schema for ${apiVersion} ${kind}`);
      failures += 1;
      continue;
    }
    try {
      new Model(object).validate();
      checked += 1;
    } catch (error) {
      const details = (error.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
      console.log(`${file}: ${name}: ${details || error.message}`);
      failures += 1;
    }
  }
}
console.log(`validate: ${checked} documents valid, ${failures} invalid`);
process.exit(failures > 0 ? 1 : 0);
