// Validates rendered Kubernetes manifests offline (scripts/check-deploy.sh).
//
//   node deploy/tools/validate.mjs NODE_MODULES_DIR FILE.yaml...
//
// Every object in every YAML stream is checked twice:
//   1. against its kind's JSON schema, through the kubernetes-models class of
//      its apiVersion and kind (types, enums, required fields, formats);
//   2. for unknown fields: those schemas accept any extra key (as the API
//      server does without strict field validation), so the object is also
//      walked against the field lists that the same package declares for every
//      Kubernetes type (its .d.ts files), and any key not declared there is an
//      error, the way `kubectl apply --validate=strict` would report it.
// A kind this script does not know is an error, not a pass.
// Exit status: 0 all valid, 1 some object invalid, 2 usage or set-up error.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, ...files] = process.argv.slice(2);
if (!nodeModules || files.length === 0) {
  console.error("usage: validate.mjs NODE_MODULES_DIR FILE.yaml...");
  process.exit(2);
}
const modelsDir = path.join(nodeModules, "kubernetes-models");
const machineryDir = path.join(nodeModules, "@kubernetes-models", "apimachinery");
const importFrom = (p) => import(pathToFileURL(p).href);
const YAML = await importFrom(path.join(nodeModules, "yaml", "dist", "index.js"));

// ---- field lists from the .d.ts files -------------------------------------
// Each file declares one interface (`export interface IPodSpec {`) and
// exports it under its full name (`export type { IPodSpec as
// IIoK8sApiCoreV1PodSpec, ... }`); fields name other types by full name.
const byFullName = new Map(); // IIoK8sApiCoreV1PodSpec -> {field: typeText}
const byFile = new Map(); // absolute path without extension -> fields

function parseFields(body) {
  const fields = {};
  let i = 0;
  const re = /\n {4}"([^"]+)"\??: /g;
  let m;
  while ((m = re.exec(body))) {
    // The type runs to the first ';' outside braces and angle brackets.
    let depth = 0;
    let j = re.lastIndex;
    for (; j < body.length; j++) {
      const c = body[j];
      if (c === "{" || c === "<" || c === "(") depth++;
      else if (c === "}" || c === ">" || c === ")") depth--;
      else if (c === ";" && depth === 0) break;
    }
    fields[m[1]] = body.slice(re.lastIndex, j).trim();
    re.lastIndex = j;
    i++;
  }
  return fields;
}

function scan(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && entry.name !== "_schemas") scan(p);
      continue;
    }
    if (!entry.name.endsWith(".d.ts")) continue;
    const text = fs.readFileSync(p, "utf8");
    const iface = /^export interface (\w+)(?: extends [\w, ]+)? \{$/m.exec(text);
    if (!iface) continue;
    // The interface body ends at the first line that is exactly "}".
    const start = iface.index + iface[0].length;
    const end = text.indexOf("\n}", start);
    const fields = parseFields(text.slice(start, end + 1));
    byFile.set(p.slice(0, -".d.ts".length), fields);
    const alias = new RegExp(`export type \\{ ${iface[1]} as (\\w+)`).exec(text);
    if (alias) byFullName.set(alias[1], fields);
  }
}
scan(modelsDir);
scan(machineryDir);
if (byFullName.size < 500) {
  console.error(`validate.mjs: found only ${byFullName.size} types under ${nodeModules}`);
  process.exit(2);
}

// A field's type text, reduced to what the walk needs.
function resolve(typeText) {
  let t = typeText.trim();
  const arr = /^Array<([\s\S]*)>$/.exec(t);
  if (arr) return { kind: "array", of: resolve(arr[1]) };
  const map = /^\{\s*\[key: string\]: ([\s\S]*?);?\s*\}$/.exec(t);
  if (map) return { kind: "map", of: resolve(map[1]) };
  if (byFullName.has(t)) return { kind: "object", fields: byFullName.get(t) };
  return { kind: "any" }; // strings, numbers, unions, IntOrString, Quantity, Time...
}

function unknownFields(value, fields, where, out) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (!(key in fields)) {
      out.push(`${where}.${key}: unknown field`);
      continue;
    }
    walk(child, resolve(fields[key]), `${where}.${key}`, out);
  }
}

function walk(value, type, where, out) {
  if (value === null || value === undefined) return;
  if (type.kind === "object") unknownFields(value, type.fields, where, out);
  else if (type.kind === "array" && Array.isArray(value))
    value.forEach((v, i) => walk(v, type.of, `${where}[${i}]`, out));
  else if (type.kind === "map" && typeof value === "object")
    for (const [k, v] of Object.entries(value)) walk(v, type.of, `${where}[${k}]`, out);
}

// ---- the model class of an apiVersion and kind ------------------------------
async function modelFor(apiVersion, kind) {
  const dir = apiVersion.includes("/") ? apiVersion : apiVersion; // "v1" or "group/version"
  const base = path.join(modelsDir, ...dir.split("/"), kind);
  if (!fs.existsSync(base + ".js")) return null;
  const mod = await importFrom(base + ".js");
  return { Model: mod[kind], fields: byFile.get(base) };
}

let objects = 0;
let failures = 0;
for (const file of files) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    objects++;
    const name = `${file}: ${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      console.error(`${name}: no apiVersion or kind`);
      failures++;
      continue;
    }
    const model = await modelFor(obj.apiVersion, obj.kind);
    if (!model || !model.Model || !model.fields) {
      console.error(`${name}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      failures++;
      continue;
    }
    const problems = [];
    try {
      new model.Model(obj).validate();
    } catch (e) {
      problems.push(`schema: ${e.message}`);
    }
    unknownFields(obj, model.fields, "", problems);
    if (problems.length) {
      failures++;
      console.error(`${name} (${obj.apiVersion}):`);
      for (const p of problems) console.error(`  ${p}`);
    } else {
      console.log(`ok  ${name} (${obj.apiVersion})`);
    }
  }
}
if (objects === 0) {
  console.error("validate.mjs: no objects found");
  process.exit(1);
}
console.log(`${objects} objects, ${failures} invalid`);
process.exit(failures ? 1 : 0);
