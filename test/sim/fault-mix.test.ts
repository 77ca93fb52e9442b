// The default profile draws each seed's shape in proportion to defaultShapeWeights, and a
// default seed's world is exactly the world its shape's own profile draws for that seed (so a
// regression seed pinned to profile=broad replays what the default profile drew before it
// mixed shapes); a named profile always draws its own shape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Draws,
  defaultShapeWeights,
  drawFaultMix,
  drawShape,
  type Shape,
} from '../../src/sim/fault-mix.ts';

const shapes = Object.keys(defaultShapeWeights) as Shape[];

test('a named profile is its own shape', () => {
  for (let seed = 1; seed <= 50; seed++) {
    for (const shape of shapes) assert.equal(drawShape(new Draws(seed), shape), shape);
  }
});

test('the default profile draws shapes in proportion to their weights', () => {
  const seedCount = 20_000;
  const counts = new Map<Shape, number>();
  for (let seed = 1; seed <= seedCount; seed++) {
    const shape = drawShape(new Draws(seed), 'default');
    counts.set(shape, (counts.get(shape) ?? 0) + 1);
  }
  const total = Object.values(defaultShapeWeights).reduce((sum, weight) => sum + weight, 0);
  for (const shape of shapes) {
    const expected = (seedCount * defaultShapeWeights[shape]) / total;
    const seen = counts.get(shape) ?? 0;
    // Five standard deviations of a binomial count: a wrong weight is off by far more.
    const slack = 5 * Math.sqrt(expected);
    assert.ok(
      Math.abs(seen - expected) < slack,
      `${shape}: ${seen} of ${seedCount}, expected ~${expected}`,
    );
  }
});

test('a default seed draws the same world as its shape profile', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const request = { nodeCount: null, faultPhaseTicks: 600 };
    const mixed = drawFaultMix(new Draws(seed), { ...request, profile: 'default' });
    const alone = drawFaultMix(new Draws(seed), { ...request, profile: mixed.shape });
    assert.deepEqual({ ...mixed, profile: alone.profile }, alone, `seed ${seed}`);
  }
});

test('weighted never picks a zero weight and rejects all-zero weights', () => {
  for (let seed = 1; seed <= 500; seed++) {
    assert.equal(new Draws(seed).weighted('w', { a: 0, b: 3, c: 0 }), 'b');
  }
  assert.throws(() => new Draws(1).weighted('w', { a: 0, b: 0 }));
});
