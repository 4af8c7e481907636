#!/usr/bin/env node
console.log("appctl " + require("../package.json").version + ": " + (process.argv[2] || "help"));
