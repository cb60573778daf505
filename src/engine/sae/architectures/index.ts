/** The architectures the atlas encodes, by the name SAELens gives them; see ./architecture.ts. */
import type { Architecture } from './architecture.js';
import { standard } from './standard.js';
import { jumprelu } from './jumprelu.js';
import { topk } from './topk.js';
import { gated } from './gated.js';

export const ARCHITECTURES = { standard, jumprelu, topk, gated } satisfies Record<string, Architecture>;

export type SaeArchitecture = keyof typeof ARCHITECTURES;
export const SAE_ARCHITECTURES = Object.keys(ARCHITECTURES) as readonly SaeArchitecture[];
