Gem::Specification.new do |s|
  s.name = "shouty"
  s.version = "1.1.0"
  s.summary = "Shouts (a corpus stand-in for a rubygems.org gem)"
  s.authors = ["kiln corpus"]
  s.files = ["lib/shouty.rb"]
  s.license = "MIT"
end
