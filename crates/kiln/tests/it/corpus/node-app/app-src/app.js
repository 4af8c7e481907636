const greet = require("greet");
const version = require("greet/package.json").version;
console.log(greet(process.env.APP_GREETS || "kiln") + " (greet " + version + ", " + process.env.NODE_ENV + ")");
