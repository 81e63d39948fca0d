/**
 * zod's mini build with English messages only: the classic build bundles every locale and its
 * method-chaining API, which together were a third of the CLIs' start-up time. Modules import
 * `* as z from 'zod/mini'` themselves (a namespace re-export would defeat tree shaking) and this
 * module once for its side effect.
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());
