// gows.mjs: gows.js as an ES module (browsers).
//   import { GowsClient } from "/gows.mjs";
import "./gows.js";

const gows = globalThis.gows;
export const GowsClient = gows.GowsClient;
export const version = gows.version;
export default gows;
