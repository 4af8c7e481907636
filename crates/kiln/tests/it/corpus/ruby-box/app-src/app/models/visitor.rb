class Visitor
  def initialize(name)
    @name = name
  end

  def welcome
    Greeter.greet(@name)
  end
end
