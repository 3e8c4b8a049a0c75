// expect: capability_denied
// grants: net:169.254.169.254
// The cloud metadata address is refused even when its host is granted
// (only net:169.254.169.254:80 would allow it).
export default await fetch("http://169.254.169.254/latest/meta-data/iam/security-credentials/");
