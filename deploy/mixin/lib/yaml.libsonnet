// A small YAML emitter for the generated files. std.manifestYamlDoc sorts keys, which puts `expr`
// before `record` and `annotations` before `expr`; this one keeps the order people read rule files
// in (name, interval, record/alert, expr, for, labels, annotations) and writes multi-line strings
// (PromQL) as literal blocks. Keys it does not know follow in alphabetical order.
local order = [
  'name', 'interval', 'record', 'alert', 'expr', 'for', 'labels', 'annotations',
  'summary', 'description', 'runbook_url',
  // Alertmanager
  'global', 'route', 'matchers', 'receiver', 'group_by', 'group_wait', 'group_interval', 'repeat_interval',
  'source_matchers', 'target_matchers', 'equal', 'continue', 'routes',
  'receivers', 'inhibit_rules',
];
local safeFirst = std.stringChars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_');
local digits = std.stringChars('0123456789');
local safe = safeFirst + digits + std.stringChars('-.:');
local reserved = ['true', 'false', 'yes', 'no', 'y', 'n', 'on', 'off', 'null', 'nan', 'inf'];
// Character sets as objects: std.objectHas is much faster than std.member in jsonnet 0.18.
local setOf(chars) = { [c]: true for c in chars };
local safeFirstSet = setOf(safeFirst);
local safeSet = setOf(safe);
local digitSet = setOf(digits);

local plain(s) =
  std.length(s) > 0
  && std.length(s) < 100
  && std.objectHas(safeFirstSet, s[0])
  && std.length([c for c in std.stringChars(s) if !std.objectHas(safeSet, c)]) == 0
  && !std.member(reserved, std.asciiLower(s));

// Durations (30s, 5m, 1h) are plain strings in YAML too.
local duration(s) =
  std.length(s) >= 2
  && std.member(std.stringChars('smhdwy'), s[std.length(s) - 1])
  && std.length([c for c in std.stringChars(std.substr(s, 0, std.length(s) - 1)) if !std.objectHas(digitSet, c)]) == 0;

// Single quotes where nothing needs escaping but the quote itself (PromQL and templates are full
// of double quotes); JSON's double-quoted form (valid YAML) for anything with control characters.
local printable(s) = std.length([c for c in std.stringChars(s) if std.codepoint(c) < 32 || std.codepoint(c) == 127]) == 0;

local scalar(v) =
  if std.isString(v) then (
    if plain(v) || duration(v) then v
    else if printable(v) then "'" + std.strReplace(v, "'", "''") + "'"
    else std.escapeStringJson(v)
  )
  else if v == null then 'null'
  else std.toString(v);

local keysOf(o) =
  [k for k in order if std.objectHas(o, k)]
  + [k for k in std.objectFields(o) if !std.member(order, k)];

local multiline(s) = std.isString(s) && std.length(std.split(s, '\n')) > 1;

// Literal block: the header (| or |-) and the indented lines.
local endsWithNewline(s) = s[std.length(s) - 1] == '\n';
local blockHeader(s) = if endsWithNewline(s) then '|' else '|-';
local blockLines(s, ind) =
  local body = if endsWithNewline(s) then std.substr(s, 0, std.length(s) - 1) else s;
  [if l == '' then '' else ind + l for l in std.split(body, '\n')];

local emptyOrScalar(v) =
  if std.isArray(v) && std.length(v) == 0 then '[]'
  else if std.isObject(v) && std.length(std.objectFields(v)) == 0 then '{}'
  else scalar(v);

local obj(o, ind) = std.flattenArrays([entry(k, o[k], ind) for k in keysOf(o)]),
      entry(k, v, ind) =
  if std.isObject(v) && std.length(std.objectFields(v)) > 0 then [ind + k + ':'] + obj(v, ind + '  ')
  else if std.isArray(v) && std.length(v) > 0 then [ind + k + ':'] + arr(v, ind + '  ')
  else if multiline(v) then [ind + k + ': ' + blockHeader(v)] + blockLines(v, ind + '  ')
  else [ind + k + ': ' + emptyOrScalar(v)],
      arr(a, ind) = std.flattenArrays([item(x, ind) for x in a]),
      item(x, ind) =
  if std.isObject(x) && std.length(std.objectFields(x)) > 0 then
    local lines = obj(x, ind + '  ');
    [ind + '- ' + std.substr(lines[0], std.length(ind) + 2, std.length(lines[0]))] + lines[1:]
  else if multiline(x) then [ind + '- ' + blockHeader(x)] + blockLines(x, ind + '  ')
  else [ind + '- ' + emptyOrScalar(x)];

{
  // manifest(object, header): YAML text; header lines are written as comments first.
  manifest(o, header=[]):: std.join('\n', ['# ' + l for l in header] + obj(o, '')) + '\n',
}
