/**
 * A small reader for untyped JSON config: every accessor takes a dotted path, records an error naming that
 * path and the expected form when the value is wrong, and returns a fallback so that reading continues and
 * ALL errors are reported at once.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export class ConfigReader {
  readonly errors: string[] = [];

  error(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }

  /** An object at `path` (absent => `{}`), reporting keys outside `known`. */
  object(value: Json | undefined, path: string, known: readonly string[]): JsonObject {
    if (value === undefined) return {};
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.error(path, `expected an object, got ${describe(value)}`);
      return {};
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.error(`${path ? `${path}.` : ''}${key}`, `unknown field; expected one of ${known.join(', ')}`);
    }
    return value;
  }

  /** A free-form object (validated by whoever consumes it) or undefined. */
  optionalObject(value: Json | undefined, path: string): JsonObject | undefined {
    if (value === undefined) return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.error(path, `expected an object, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  string(value: Json | undefined, path: string, fallback: string, rule?: { pattern: RegExp; form: string }): string {
    if (value === undefined) return fallback;
    if (typeof value !== 'string') {
      this.error(path, `expected a string${rule ? ` (${rule.form})` : ''}, got ${describe(value)}`);
      return fallback;
    }
    if (rule && !rule.pattern.test(value)) {
      this.error(path, `'${value}' is not valid: expected ${rule.form}`);
      return fallback;
    }
    return value;
  }

  optionalString(value: Json | undefined, path: string, rule?: { pattern: RegExp; form: string }): string | undefined {
    if (value === undefined || value === null) return undefined;
    const s = this.string(value, path, '', rule);
    return s === '' ? undefined : s;
  }

  oneOf<T extends string>(value: Json | undefined, path: string, choices: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      this.error(path, `expected one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${describe(value)}`);
      return fallback;
    }
    return value as T;
  }

  integer(value: Json | undefined, path: string, fallback: number, range: { min: number; max: number; allowed?: readonly number[] }): number {
    if (value === undefined) return fallback;
    const expected = range.allowed ? `one of ${range.allowed.join(', ')}` : `an integer from ${range.min} to ${range.max}`;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
      this.error(path, `expected ${expected}, got ${describe(value)}`);
      return fallback;
    }
    if (range.allowed && !range.allowed.includes(value)) {
      this.error(path, `expected ${expected}, got ${value}`);
      return fallback;
    }
    return value;
  }

  optionalInteger(value: Json | undefined, path: string, range: { min: number; max: number }): number | undefined {
    if (value === undefined || value === null) return undefined;
    const n = this.integer(value, path, Number.NaN, range);
    return Number.isNaN(n) ? undefined : n;
  }

  boolean(value: Json | undefined, path: string, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      this.error(path, `expected true or false, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  /** An array of distinct strings each matching `rule`. */
  stringList(value: Json | undefined, path: string, fallback: readonly string[], rule: { pattern: RegExp; form: string }): string[] {
    if (value === undefined) return [...fallback];
    if (!Array.isArray(value)) {
      this.error(path, `expected a list of ${rule.form}, got ${describe(value)}`);
      return [...fallback];
    }
    const out: string[] = [];
    value.forEach((item, i) => {
      if (typeof item !== 'string' || !rule.pattern.test(item)) {
        this.error(`${path}[${i}]`, `expected ${rule.form}, got ${describe(item)}`);
      } else if (out.includes(item)) {
        this.error(`${path}[${i}]`, `'${item}' is listed twice`);
      } else {
        out.push(item);
      }
    });
    return out;
  }

  /** A map of string keys (matching `keyRule`) to scalar values, returned as strings. */
  scalarMap(value: Json | undefined, path: string, keyRule: { pattern: RegExp; form: string }): Record<string, string> {
    if (value === undefined) return {};
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.error(path, `expected an object of name -> value, got ${describe(value)}`);
      return {};
    }
    const out: Record<string, string> = {};
    for (const [key, v] of Object.entries(value)) {
      if (!keyRule.pattern.test(key)) {
        this.error(`${path}.${key}`, `invalid name: expected ${keyRule.form}`);
      } else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
        out[key] = String(v);
      } else {
        this.error(`${path}.${key}`, `expected a string, number or boolean, got ${describe(v)}`);
      }
    }
    return out;
  }
}

export function describe(value: Json | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}
