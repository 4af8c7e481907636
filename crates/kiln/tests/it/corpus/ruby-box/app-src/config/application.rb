require_relative "boot"
Bundler.require(:default)
require_relative "../app/models/visitor"

module Shop
  class Application
    def self.root
      File.expand_path("..", __dir__)
    end
  end
end
