import type { Database } from '../db/client.js';
import type { Loaders } from '../app/loaders.js';
import type { Auth } from '../app/auth.js';
import type { Services } from '../app/services.js';
import type { SkippedDictionary } from '../app/search.js';
import type { SearchPlan } from '../app/nearest.js';

/** What every resolver sees: the database, this request's loaders, and the server's services. */
export interface Context {
  database: Database;
  loaders: Loaders;
  services: Services;
  /** The request's API key, checked on first use (writes call auth.require()). */
  auth: Auth;
  /** Dictionaries a search left out (files unavailable); the server reports them in the response's extensions. */
  skippedDictionaries: SkippedDictionary[];
  /** How each dictionary of a nearestFeatures search was searched; reported in the response's extensions. */
  searchPlans: SearchPlan[];
}
