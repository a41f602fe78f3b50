/** Types of lanes.mjs (plain JavaScript: `npm test` reads it before any TypeScript loader runs). */
export declare const WAITING_FILES: readonly string[];
