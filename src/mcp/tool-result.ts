/**
 * The shape of every tool's answer: structured content for programs, and a short text for
 * the model saying what happened. A thrown error becomes a tool error (./tool-errors.ts).
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ToolFailure, toolError } from './tool-errors.ts';

/** Runs a tool's body; its value and sentence become the result, a throw the tool error. */
export async function answer(
  body: () => Promise<{ readonly value: Record<string, unknown>; readonly text: string }>,
): Promise<CallToolResult> {
  try {
    const { value, text } = await body();
    return { content: [{ type: 'text', text }], structuredContent: value };
  } catch (error) {
    return toolError(error);
  }
}

/** The input schemas the tools share. */
export const name = (what: string) =>
  z.string().min(1).max(200).describe(`${what}: 1–200 characters`);
export const durationMs = (what: string) =>
  z.number().int().min(1).max(86_400_000).describe(`${what}, in milliseconds`);
export const token = z
  .number()
  .int()
  .min(1)
  .describe('the fencing token the claim or lease gave you');
export const position = (what: string) => z.number().int().min(1).describe(what);

/** A JSON value the caller must give (the schema alone lets `undefined` through). */
export function required(value: unknown, field: string): unknown {
  if (value === undefined) {
    throw new ToolFailure('invalid_argument', `${field} is required: give any JSON value.`, {
      field,
    });
  }
  return value;
}

/** A short rendering of a JSON value for the text the model reads. */
export function brief(value: unknown, charsMax = 200): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.length <= charsMax ? text : `${text.slice(0, charsMax)}…`;
}
