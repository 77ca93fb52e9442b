/**
 * Reads and runs a scenario script (test/scenarios/*.txt): a `#` comment header saying what the
 * scenario proves, commands one per line, then `----` and the expected transcript. The
 * transcript echoes each command as `> command` followed by what happened, and keeps the
 * comments and blank lines of the command part, so it reads on its own.
 */
import { readFileSync } from 'node:fs';
import { ScenarioError } from './scenario-cluster.ts';
import { runCommand, type ScenarioContext } from './scenario-commands.ts';

export const separator = '----';
/** A script longer than this is a simulation, not a scenario; src/sim is the place for it. */
const scriptLinesMax = 2_000;

export interface ScriptLine {
  /** 1-based, for error messages. */
  readonly lineNumber: number;
  readonly text: string;
}

export interface ScenarioScript {
  readonly name: string;
  readonly header: readonly string[];
  readonly body: readonly ScriptLine[];
  /** Null when the file has no `----` part yet (a new scenario). */
  readonly expected: string | null;
}

export class ScenarioScriptError extends Error {
  constructor(name: string, lineNumber: number, message: string) {
    super(`${name}:${lineNumber}: ${message}`);
    this.name = 'ScenarioScriptError';
  }
}

export function parseScenario(name: string, text: string): ScenarioScript {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const separatorAt = lines.indexOf(separator);
  const scriptLines = separatorAt === -1 ? lines : lines.slice(0, separatorAt);
  if (scriptLines.length > scriptLinesMax) {
    throw new ScenarioScriptError(name, scriptLinesMax, `more than ${scriptLinesMax} lines`);
  }
  let headerEnd = 0;
  while (scriptLines[headerEnd]?.startsWith('#')) headerEnd++;
  if (headerEnd === 0) {
    throw new ScenarioScriptError(
      name,
      1,
      'a scenario begins with a # comment saying what it proves',
    );
  }
  const body = scriptLines
    .slice(headerEnd)
    .map((line, offset) => ({ lineNumber: headerEnd + offset + 1, text: line.trimEnd() }));
  const expected = separatorAt === -1 ? null : trimTrailingBlank(lines.slice(separatorAt + 1));
  return { name, header: scriptLines.slice(0, headerEnd), body: trimTrailingLines(body), expected };
}

function trimTrailingBlank(lines: readonly string[]): string {
  return lines.join('\n').replace(/\s+$/, '');
}

function trimTrailingLines(body: readonly ScriptLine[]): ScriptLine[] {
  const kept = [...body];
  while (kept.length > 0 && kept[kept.length - 1]?.text === '') kept.pop();
  while (kept.length > 0 && kept[0]?.text === '') kept.shift();
  return kept;
}

/** Runs every command against a fresh cluster; returns the transcript. */
export function runScenario(script: ScenarioScript): string {
  const context: ScenarioContext = { cluster: null };
  const transcript: string[] = [];
  for (const line of script.body) {
    if (line.text === '' || line.text.startsWith('#')) {
      transcript.push(line.text);
      continue;
    }
    transcript.push(`> ${line.text.trim()}`);
    const cluster = context.cluster;
    const mark = cluster?.lines.length ?? 0;
    try {
      runCommand(context, line.text);
    } catch (error) {
      if (error instanceof ScenarioError) {
        throw new ScenarioScriptError(script.name, line.lineNumber, error.message);
      }
      throw error;
    }
    const lines = context.cluster?.lines ?? [];
    transcript.push(...lines.slice(cluster === null ? 0 : mark));
  }
  return transcript.join('\n').replace(/\s+$/, '');
}

/** The file as it should read with `transcript` as its expectation (UPDATE=1). */
export function renderScenario(script: ScenarioScript, transcript: string): string {
  const body = script.body.map((line) => line.text);
  return `${[...script.header, ...body, separator, transcript].join('\n')}\n`;
}

export function loadScenario(path: string, name: string): ScenarioScript {
  return parseScenario(name, readFileSync(path, 'utf8'));
}
