Gem::Specification.new do |s|
  s.name = "greeter"
  s.version = "0.2.0"
  s.summary = "Greets (a corpus stand-in for a rubygems.org gem)"
  s.authors = ["kiln corpus"]
  s.files = ["lib/greeter.rb"]
  s.license = "MIT"
  s.add_dependency "shouty", "~> 1.0"
end
