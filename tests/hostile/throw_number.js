// expect: exception
throw 42;
