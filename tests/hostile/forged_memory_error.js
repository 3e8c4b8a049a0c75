// expect: exception
// A thrown error that reads like an allocation failure is an exception:
// only the engine decides memory_limit.
throw new RangeError("Array buffer allocation failed");
