// expect: exception
// grants: secret:TOKEN
// The victim workspace has a TOKEN secret; this workspace does not.
import { secrets } from "quire";
export default await secrets.get("TOKEN");
