/**
 * The part of DynamoDB's expression language the stack uses, evaluated as DynamoDB documents it: condition
 * expressions (comparisons of a path with a value, attribute_exists / attribute_not_exists, AND, OR, NOT,
 * parentheses; numbers compare as numbers), SET update expressions and projection expressions. Anything else is
 * refused with DynamoDB's ValidationException, so a stand-in never silently accepts what DynamoDB would not.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

export type Item = Record<string, AttributeValue>;

export interface ExpressionContext {
  readonly names?: Record<string, string>;
  readonly values?: Record<string, AttributeValue>;
}

export class ValidationException extends Error {
  override readonly name = 'ValidationException';
  readonly $metadata = { httpStatusCode: 400 };
}

type Token = { kind: 'name' | 'value' | 'op' | 'lparen' | 'rparen' | 'comma' | 'word'; text: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|(<>|<=|>=|=|<|>)|(\()|(\))|(,)|([A-Za-z_][A-Za-z0-9_.]*))/y;
  let i = 0;
  while (i < expression.length) {
    if (/^\s*$/.test(expression.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(expression);
    if (!m) throw new ValidationException(`Invalid expression: syntax error near '${expression.slice(i, i + 20)}'`);
    i = re.lastIndex;
    if (m[1]) tokens.push({ kind: 'name', text: m[1] });
    else if (m[2]) tokens.push({ kind: 'value', text: m[2] });
    else if (m[3]) tokens.push({ kind: 'op', text: m[3] });
    else if (m[4]) tokens.push({ kind: 'lparen', text: '(' });
    else if (m[5]) tokens.push({ kind: 'rparen', text: ')' });
    else if (m[6]) tokens.push({ kind: 'comma', text: ',' });
    else tokens.push({ kind: 'word', text: m[7]! });
  }
  return tokens;
}

function attributeName(token: Token, ctx: ExpressionContext): string {
  if (token.kind === 'name') {
    const name = ctx.names?.[token.text];
    if (name === undefined) throw new ValidationException(`Value provided in ExpressionAttributeNames unused in expressions or undefined: ${token.text}`);
    return name;
  }
  if (token.kind === 'word') return token.text;
  throw new ValidationException(`Invalid expression: expected an attribute name, got '${token.text}'`);
}

function attributeValue(token: Token, ctx: ExpressionContext): AttributeValue {
  const value = ctx.values?.[token.text];
  if (value === undefined) throw new ValidationException(`An expression attribute value used in expression is not defined; attribute value: ${token.text}`);
  return value;
}

function compare(a: AttributeValue | undefined, b: AttributeValue | undefined, op: string): boolean {
  if (a === undefined || b === undefined) return op === '<>' && !(a === undefined && b === undefined);
  if (a.N !== undefined && b.N !== undefined) {
    const x = Number(a.N);
    const y = Number(b.N);
    return { '=': x === y, '<>': x !== y, '<': x < y, '<=': x <= y, '>': x > y, '>=': x >= y }[op]!;
  }
  if (a.S !== undefined && b.S !== undefined) {
    const c = a.S < b.S ? -1 : a.S > b.S ? 1 : 0;
    return { '=': c === 0, '<>': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[op]!;
  }
  const same = JSON.stringify(a) === JSON.stringify(b);
  if (op === '=') return same;
  if (op === '<>') return !same;
  return false; // DynamoDB: an ordering of different types is false
}

/** True when `item` (undefined: no item) satisfies the condition expression. */
export function evaluateCondition(expression: string, item: Item | undefined, ctx: ExpressionContext): boolean {
  const tokens = tokenize(expression);
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => {
    const t = tokens[pos++];
    if (!t) throw new ValidationException('Invalid ConditionExpression: unexpected end of expression');
    return t;
  };
  const word = (t: Token | undefined, w: string) => t?.kind === 'word' && t.text.toUpperCase() === w;
  const operand = (t: Token): AttributeValue | undefined => (t.kind === 'value' ? attributeValue(t, ctx) : item?.[attributeName(t, ctx)]);

  const primary = (): boolean => {
    const t = next();
    if (t.kind === 'lparen') {
      const v = or();
      if (next().kind !== 'rparen') throw new ValidationException('Invalid ConditionExpression: missing )');
      return v;
    }
    if (word(t, 'NOT')) return !primary();
    if (t.kind === 'word' && (t.text === 'attribute_exists' || t.text === 'attribute_not_exists')) {
      if (next().kind !== 'lparen') throw new ValidationException(`Invalid ConditionExpression: ${t.text} needs (path)`);
      const name = attributeName(next(), ctx);
      if (next().kind !== 'rparen') throw new ValidationException('Invalid ConditionExpression: missing )');
      const exists = item?.[name] !== undefined;
      return t.text === 'attribute_exists' ? exists : !exists;
    }
    const op = next();
    if (op.kind !== 'op') throw new ValidationException(`Invalid ConditionExpression: expected a comparator after '${t.text}', got '${op.text}'`);
    return compare(operand(t), operand(next()), op.text);
  };
  const and = (): boolean => {
    let v = primary();
    while (word(peek(), 'AND')) {
      pos++;
      const r = primary();
      v = v && r;
    }
    return v;
  };
  const or = (): boolean => {
    let v = and();
    while (word(peek(), 'OR')) {
      pos++;
      const r = and();
      v = v || r;
    }
    return v;
  };
  const result = or();
  if (pos !== tokens.length) throw new ValidationException(`Invalid ConditionExpression: unexpected '${tokens[pos]!.text}'`);
  return result;
}

/** Applies `SET a = :x, #b = :y` to a copy of the item. */
export function applyUpdate(expression: string, item: Item, ctx: ExpressionContext): Item {
  const tokens = tokenize(expression);
  if (!tokens[0] || tokens[0].kind !== 'word' || tokens[0].text.toUpperCase() !== 'SET') {
    throw new ValidationException(`Invalid UpdateExpression: the twin supports SET only, got '${expression}'`);
  }
  const out: Item = { ...item };
  let pos = 1;
  for (;;) {
    const name = attributeName(tokens[pos++]!, ctx);
    if (tokens[pos++]?.text !== '=') throw new ValidationException('Invalid UpdateExpression: expected =');
    out[name] = attributeValue(tokens[pos++]!, ctx);
    if (pos >= tokens.length) return out;
    if (tokens[pos++]!.kind !== 'comma') throw new ValidationException(`Invalid UpdateExpression: unexpected '${tokens[pos - 1]!.text}'`);
  }
}

/** Keeps the projected top-level attributes. */
export function project(expression: string | undefined, item: Item, ctx: ExpressionContext): Item {
  if (!expression) return item;
  const names = tokenize(expression)
    .filter((t) => t.kind !== 'comma')
    .map((t) => attributeName(t, ctx));
  return Object.fromEntries(Object.entries(item).filter(([k]) => names.includes(k)));
}
